//! Compiles the eBPF data plane (`ebpf/*.c`) with clang into `$OUT_DIR`, where
//! `src/network/firewall` embeds it. clang is a build dependency like a C compiler.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
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
