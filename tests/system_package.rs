//! The Debian package (issue 7): `scripts/test-package.sh` builds it twice from this
//! build's binary, runs lintian, installs it into a clean Debian 12 root made with
//! debootstrap, checks the installed files and `skiff serve` over HTTPS, upgrades it
//! with the data intact, boots a guest from the installed binary and configuration
//! (the root's own libvirtd beside it), then removes and purges it. Needs root (chroot, mounts,
//! network namespaces).

use std::path::Path;
use std::process::Command;

#[test]
fn the_package_installs_upgrades_and_purges_in_a_clean_debian_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("CI").is_none(),
            "the package test needs root: run scripts/test.sh as root"
        );
        eprintln!("\n!!!!!!!! SKIP: not root: the package test (debootstrap, chroot) !!!!!!!!\n");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("timeout")
        .arg("1500")
        .arg("bash")
        .arg(root.join("scripts/test-package.sh"))
        .arg(env!("CARGO_BIN_EXE_skiff"))
        .output()
        .expect("run scripts/test-package.sh");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{text}");
    assert!(out.status.success(), "the package test failed (see above)");
    assert!(text.contains("package test passed"));
}
