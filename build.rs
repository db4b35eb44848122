//! Build steps beyond rustc:
//! - the eBPF data plane (`ebpf/*.c`), compiled with clang into `$OUT_DIR`, where
//!   `src/network/firewall` embeds it. clang is a build dependency like a C compiler.
//! - the dashboard's assets: our own files in `static/`, and the third-party front-end
//!   libraries that `static/package-lock.json` pins, installed with `npm ci` into
//!   `$OUT_DIR` (never into the source tree, never from a CDN at run time). Both are
//!   listed in `$OUT_DIR/assets.rs` for `src/web/assets.rs` to embed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    build_ebpf(&out);
    build_assets(&out);
}

fn build_ebpf(out: &Path) {
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "x86_64-linux-gnu",
        Ok("aarch64") => "aarch64-linux-gnu",
        _ => "x86_64-linux-gnu",
    };
    println!("cargo:rerun-if-changed=ebpf/firewall.c");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I/usr/include/{arch}"))
        .args(["-c", "ebpf/firewall.c", "-o"])
        .arg(out.join("firewall.o"))
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run {clang} for the eBPF data plane ({e}): install clang and libbpf-dev")
        });
    assert!(status.success(), "clang failed on ebpf/firewall.c");
}

/// Which files of each npm package the dashboard serves, and under which name.
const VENDOR: &[(&str, &str, &str)] = &[
    // (package dir in node_modules, sub-path or dir, served prefix)
    ("htmx.org", "dist/htmx.min.js", "vendor/htmx.min.js"),
    ("@novnc/novnc", "core", "vendor/novnc/core"),
    ("@novnc/novnc", "vendor/pako", "vendor/novnc/vendor/pako"),
    ("@novnc/novnc", "LICENSE.txt", "vendor/novnc/LICENSE.txt"),
];

fn build_assets(out: &Path) {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let stat = root.join("static");
    println!("cargo:rerun-if-changed=static");
    let npm_dir = out.join("npm");
    std::fs::create_dir_all(&npm_dir).expect("create OUT_DIR/npm");
    let mut fresh = true;
    for f in ["package.json", "package-lock.json"] {
        println!("cargo:rerun-if-changed=static/{f}");
        let want = std::fs::read(stat.join(f)).unwrap_or_else(|e| panic!("static/{f}: {e}"));
        if std::fs::read(npm_dir.join(f)).ok().as_ref() != Some(&want) {
            std::fs::write(npm_dir.join(f), want).expect("copy package files");
            fresh = false;
        }
    }
    if !fresh || !npm_dir.join("node_modules").is_dir() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(&npm_dir)
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run npm for the dashboard's libraries ({e}): install nodejs and npm")
            });
        assert!(
            status.success(),
            "npm ci failed for static/package-lock.json"
        );
    }
    let mut assets: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(&stat).expect("read static/") {
        let path = entry.expect("static entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_file() && !name.starts_with("package") && !name.starts_with('.') {
            println!("cargo:rerun-if-changed=static/{name}");
            assets.push((name.to_string(), path));
        }
    }
    for (pkg, sub, served) in VENDOR {
        let src = npm_dir.join("node_modules").join(pkg).join(sub);
        collect(&src, served, &mut assets);
    }
    assets.sort();
    let mut code = String::from("/// (served name, bytes) of every dashboard asset.\npub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (name, path) in &assets {
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    std::fs::write(out.join("assets.rs"), code).expect("write assets.rs");
}

fn collect(src: &Path, served: &str, out: &mut Vec<(String, PathBuf)>) {
    if src.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(src)
            .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            if p.is_dir() || name.ends_with(".js") {
                collect(&p, &format!("{served}/{name}"), out);
            }
        }
    } else {
        assert!(src.is_file(), "missing {} after npm ci", src.display());
        out.push((served.to_string(), src.to_path_buf()));
    }
}
