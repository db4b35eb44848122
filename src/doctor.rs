//! `skiff doctor`: checks that this host can run skiff and says what to fix. Reads
//! only; safe while `skiff serve` runs.

use crate::compute::{Accel, Libvirt};
use crate::config::Config;
use crate::sysinfo::{fs_space, kernel_version};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One finding: what was checked, what was seen, and what to do about it.
pub struct Check {
    pub name: &'static str,
    pub level: Level,
    pub detail: String,
    pub fix: Option<String>,
}

fn ok(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        level: Level::Ok,
        detail: detail.into(),
        fix: None,
    }
}

fn bad(
    name: &'static str,
    level: Level,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> Check {
    Check {
        name,
        level,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Whether the kernel says the clock is synchronised (NTP).
fn clock_synced() -> bool {
    // SAFETY: an all-zero timex with modes 0 is a read-only query.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid, writable timex.
    let state = unsafe { libc::adjtimex(&mut t) };
    state != libc::TIME_ERROR && state >= 0
}

/// Runs every check. `libvirt` may take seconds (the first connection probes QEMU).
pub fn run(cfg: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    // Data directory and its free space.
    match fs_space(&cfg.data_dir).map(|s| s.free_gib) {
        Some(free) if free < 2.0 => out.push(bad(
            "disk",
            Level::Fail,
            format!("{free:.1} GiB free for {}", cfg.data_dir.display()),
            "free space, or point data_dir at a larger disk: VM disks and images live there",
        )),
        Some(free) if free < 20.0 => out.push(bad(
            "disk",
            Level::Warn,
            format!("{free:.1} GiB free for {}", cfg.data_dir.display()),
            "enough for a few small VMs only; give data_dir a larger disk",
        )),
        Some(free) => out.push(ok(
            "disk",
            format!("{free:.0} GiB free for {}", cfg.data_dir.display()),
        )),
        None => out.push(bad(
            "disk",
            Level::Fail,
            format!("cannot inspect {}", cfg.data_dir.display()),
            "check data_dir",
        )),
    }
    let backups = cfg.backup_dir();
    if let Some(s) = fs_space(&backups) {
        out.push(ok(
            "backups",
            format!("{:.0} GiB free for {}", s.free_gib, backups.display()),
        ));
    }
    // Compute.
    if !cfg.compute.enabled {
        out.push(bad(
            "libvirt",
            Level::Warn,
            "compute is disabled in the configuration",
            "set [compute] enabled = true to run VMs",
        ));
    } else {
        match Libvirt::connect(&cfg.compute.libvirt_uri, Accel::Tcg) {
            Ok(_) => out.push(ok(
                "libvirt",
                format!("connected to {}", cfg.compute.libvirt_uri),
            )),
            Err(e) => out.push(bad(
                "libvirt",
                Level::Fail,
                format!("{}: {e}", cfg.compute.libvirt_uri),
                "start libvirtd (systemctl enable --now libvirtd) and check compute.libvirt_uri",
            )),
        }
    }
    match Accel::detect() {
        Accel::Kvm => out.push(ok("acceleration", "KVM (/dev/kvm usable)")),
        Accel::Tcg => out.push(bad(
            "acceleration",
            Level::Warn,
            "TCG: no usable /dev/kvm or no VMX/SVM; guests run, 10-50 times slower",
            "enable virtualisation in the firmware and load kvm_intel or kvm_amd",
        )),
    }
    // Network.
    let br = &cfg.network.public.bridge;
    if crate::network::bridge::exists(br) {
        out.push(ok("bridge", format!("{br} exists")));
    } else {
        out.push(bad(
            "bridge",
            Level::Warn,
            format!("{br} does not exist yet"),
            format!(
                "skiff creates {br} with {} at start (routed nowhere); to reach VMs from outside, \
                 set [network.public] bridge to a bridge on your uplink",
                cfg.network.public.cidr
            ),
        ));
    }
    if !cfg.network.firewall.enabled {
        out.push(bad(
            "firewall",
            Level::Warn,
            "[network.firewall] enabled = false: guests run with no security groups and no anti-spoofing",
            "single-tenant hosts only; remove the setting to enforce groups (VMs then start only when the data plane loads)",
        ));
    }
    if cfg.network.firewall.enabled {
        match fs_space(std::path::Path::new("/sys/fs/bpf")) {
            Some(s) if s.fs_type == BPF_FS_MAGIC => out.push(ok("bpffs", "/sys/fs/bpf is mounted")),
            _ => out.push(bad(
                "bpffs",
                Level::Warn,
                "/sys/fs/bpf is not a bpf filesystem",
                "mount -t bpf bpf /sys/fs/bpf (skiff tries this itself at start, as root)",
            )),
        }
        let attach = cfg.network.firewall.attach.as_str();
        match kernel_version() {
            Some((maj, min)) if (maj, min) >= (6, 6) => out.push(ok(
                "kernel",
                format!(
                    "{maj}.{min}: security groups attach through {}",
                    if attach == "tc" {
                        "classic TC (as configured)"
                    } else {
                        "TCX"
                    }
                ),
            )),
            Some((maj, min)) if attach == "tcx" => out.push(bad(
                "kernel",
                Level::Fail,
                format!("{maj}.{min} has no TCX, and [network.firewall] attach = \"tcx\""),
                "set attach = \"auto\" (classic TC on this kernel) or boot Linux 6.6 or later",
            )),
            Some((maj, min)) => out.push(ok(
                "kernel",
                format!("{maj}.{min}: no TCX; security groups attach through classic TC (clsact)"),
            )),
            None => out.push(bad(
                "kernel",
                Level::Warn,
                "unknown kernel version",
                "check /proc/sys/kernel/osrelease",
            )),
        }
    }
    // Clock: schedules, certificates and backups depend on it.
    let year = chrono::Utc::now().format("%Y").to_string();
    if year.as_str() < "2025" {
        out.push(bad(
            "clock",
            Level::Fail,
            format!("the clock says {year}"),
            "set the time (timedatectl set-ntp true)",
        ));
    } else if !clock_synced() {
        out.push(bad(
            "clock",
            Level::Warn,
            "not synchronised by NTP",
            "install and enable a time daemon (apt install systemd-timesyncd or chrony)",
        ));
    } else {
        out.push(ok("clock", "synchronised"));
    }
    // HTTPS.
    match cfg.tls.addr() {
        None => out.push(bad(
            "tls",
            Level::Warn,
            format!(
                "HTTPS is off; the dashboard is on http://{} only",
                cfg.listen
            ),
            "set [tls] listen (the package does: 0.0.0.0:8443)",
        )),
        Some(a) => match crate::app::tls_server_config(&cfg.tls) {
            Ok(_) => out.push(ok(
                "tls",
                format!("https://{a} with {}", cfg.tls.cert.display()),
            )),
            Err(e) => out.push(bad(
                "tls",
                Level::Fail,
                e.to_string(),
                "put a PEM certificate and key at [tls] cert and key",
            )),
        },
    }
    out
}

/// Prints the findings; true when nothing failed.
pub fn report(checks: &[Check]) -> bool {
    for c in checks {
        let tag = match c.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        println!("{tag}  {:<13} {}", c.name, c.detail);
        if let Some(f) = &c.fix {
            println!("      {:<13} → {f}", "");
        }
    }
    let failed = checks.iter().filter(|c| c.level == Level::Fail).count();
    let warned = checks.iter().filter(|c| c.level == Level::Warn).count();
    println!(
        "{} checks: {failed} failed, {warned} warnings",
        checks.len()
    );
    failed == 0
}
