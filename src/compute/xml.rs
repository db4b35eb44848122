//! Domain XML from a [`DomainSpec`]. Pure, so it is tested without libvirt.

use std::fmt::Write;

use super::{Accel, DiskBackup, DomainSpec};

/// Escapes text for an XML attribute or element.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The libvirt domain XML of `spec`.
pub fn domain_xml(spec: &DomainSpec) -> String {
    let kind = match spec.accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "qemu",
    };
    let mut x = String::new();
    let _ = writeln!(x, "<domain type='{kind}'>");
    let _ = writeln!(x, "  <name>{}</name>", esc(&spec.name));
    let _ = writeln!(x, "  <uuid>{}</uuid>", spec.uuid);
    let _ = writeln!(x, "  <memory unit='MiB'>{}</memory>", spec.memory_mib);
    let _ = writeln!(x, "  <vcpu>{}</vcpu>", spec.vcpus);
    x.push_str(
        "  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n    <boot dev='hd'/>\n  </os>\n",
    );
    x.push_str("  <features><acpi/><apic/></features>\n");
    if spec.accel == Accel::Kvm {
        x.push_str("  <cpu mode='host-passthrough'/>\n");
    }
    x.push_str("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n");
    x.push_str("  <devices>\n");
    // Every disk states its format and its whole backing chain (`<backingStore/>` ends
    // it): libvirt and QEMU then never probe an image for either.
    let chain = match &spec.disk_base {
        Some(base) => format!(
            "      <backingStore type='file'>\n        <format type='qcow2'/>\n        <source file='{}'/>\n        <backingStore/>\n      </backingStore>\n",
            esc(&base.to_string_lossy())
        ),
        None => "      <backingStore/>\n".to_string(),
    };
    let _ = writeln!(
        x,
        "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2' discard='unmap'/>\n      <source file='{}'/>\n{chain}      <target dev='vda' bus='virtio'/>\n    </disk>",
        esc(&spec.disk.to_string_lossy())
    );
    if let Some(seed) = &spec.seed {
        let _ = writeln!(
            x,
            "    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n      <source file='{}'/>\n      <backingStore/>\n      <target dev='vdb' bus='virtio'/>\n      <readonly/>\n    </disk>",
            esc(&seed.to_string_lossy())
        );
    }
    for nic in &spec.nics {
        let _ = writeln!(
            x,
            "    <interface type='bridge'>\n      <mac address='{}'/>\n      <source bridge='{}'/>\n      <target dev='{}'/>\n      <model type='virtio'/>\n    </interface>",
            esc(&nic.mac),
            esc(&nic.bridge),
            esc(&nic.tap)
        );
    }
    let log = esc(&spec.serial_log.to_string_lossy());
    let _ = writeln!(
        x,
        "    <serial type='pty'>\n      <log file='{log}' append='on'/>\n      <target port='0'/>\n    </serial>\n    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>"
    );
    x.push_str("    <channel type='unix'>\n      <target type='virtio' name='org.qemu.guest_agent.0'/>\n    </channel>\n");
    // A UNIX socket in libvirt's per-domain directory (0750, QEMU's user): no TCP port
    // any local user could reach.
    x.push_str("    <graphics type='vnc'>\n      <listen type='socket'/>\n    </graphics>\n");
    x.push_str("    <memballoon model='virtio'/>\n    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\n");
    x.push_str("  </devices>\n</domain>\n");
    x
}

/// `<domainbackup>` (push mode) of `req`.
pub fn backup_xml(req: &DiskBackup) -> String {
    let mut x = String::from("<domainbackup mode='push'>\n");
    if let Some(since) = &req.since {
        let _ = writeln!(x, "  <incremental>{}</incremental>", esc(since));
    }
    let format = if req.since.is_some() { "qcow2" } else { "raw" };
    let _ = writeln!(
        x,
        "  <disks>\n    <disk name='{}' backup='yes' type='file'>\n      <driver type='{format}'/>\n      <target file='{}'/>\n    </disk>",
        esc(&req.disk),
        esc(&req.target.to_string_lossy())
    );
    for d in &req.skip {
        let _ = writeln!(x, "    <disk name='{}' backup='no'/>", esc(d));
    }
    x.push_str("  </disks>\n</domainbackup>\n");
    x
}

/// `<domaincheckpoint>` taken with `req`: a bitmap on the backed-up disk only.
pub fn checkpoint_xml(req: &DiskBackup) -> String {
    let mut x = String::from("<domaincheckpoint>\n");
    let _ = writeln!(x, "  <name>{}</name>", esc(&req.checkpoint));
    let _ = writeln!(
        x,
        "  <disks>\n    <disk name='{}' checkpoint='bitmap'/>",
        esc(&req.disk)
    );
    for d in &req.skip {
        let _ = writeln!(x, "    <disk name='{}' checkpoint='no'/>", esc(d));
    }
    x.push_str("  </disks>\n</domaincheckpoint>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::NicSpec;
    use std::path::PathBuf;

    fn spec() -> DomainSpec {
        DomainSpec {
            name: "skiff-0c3e".into(),
            uuid: uuid::Uuid::nil(),
            vcpus: 2,
            memory_mib: 512,
            disk: PathBuf::from("/var/lib/skiff/vms/a b/disk.qcow2"),
            disk_base: Some(PathBuf::from("/var/lib/skiff/templates/t.qcow2")),
            seed: Some(PathBuf::from("/var/lib/skiff/vms/x/seed.img")),
            nics: vec![NicSpec {
                mac: "52:54:00:00:00:01".into(),
                bridge: "br-pub".into(),
                tap: "sk-1".into(),
            }],
            serial_log: PathBuf::from("/var/lib/skiff/vms/x/console.log"),
            accel: Accel::Tcg,
        }
    }

    #[test]
    fn tcg_guest_with_disk_seed_nic_and_logged_serial() {
        let x = domain_xml(&spec());
        assert!(x.starts_with("<domain type='qemu'>"));
        assert!(x.contains("<memory unit='MiB'>512</memory>"));
        assert!(x.contains("<vcpu>2</vcpu>"));
        assert!(x.contains("<source file='/var/lib/skiff/vms/a b/disk.qcow2'/>"));
        assert!(x.contains("<target dev='vdb' bus='virtio'/>\n      <readonly/>"));
        assert!(x.contains(
            "<source file='/var/lib/skiff/templates/t.qcow2'/>\n        <backingStore/>"
        ));
        assert!(x.contains("<format type='qcow2'/>"));
        assert!(x.contains("<driver name='qemu' type='raw'/>\n      <source file='/var/lib/skiff/vms/x/seed.img'/>\n      <backingStore/>"));
        assert!(x.contains("<source bridge='br-pub'/>"));
        assert!(x.contains("<target dev='sk-1'/>"));
        assert!(x.contains("<log file='/var/lib/skiff/vms/x/console.log' append='on'/>"));
        assert!(!x.contains("host-passthrough"));
    }

    #[test]
    fn kvm_and_escaping() {
        let mut s = spec();
        s.accel = Accel::Kvm;
        s.name = "a'<b>&".into();
        s.seed = None;
        s.disk_base = None;
        let x = domain_xml(&s);
        assert!(
            x.contains("<source file='/var/lib/skiff/vms/a b/disk.qcow2'/>\n      <backingStore/>")
        );
        assert!(x.starts_with("<domain type='kvm'>"));
        assert!(x.contains("<cpu mode='host-passthrough'/>"));
        assert!(x.contains("<name>a&apos;&lt;b&gt;&amp;</name>"));
        assert!(!x.contains("vdb"));
    }

    #[test]
    fn backups_copy_the_root_disk_and_checkpoint_it_alone() {
        let mut req = DiskBackup {
            disk: "vda".into(),
            skip: vec!["vdb".into()],
            target: PathBuf::from("/b/full.raw"),
            since: None,
            checkpoint: "skiff-1".into(),
        };
        let full = backup_xml(&req);
        assert!(full.contains("<driver type='raw'/>") && !full.contains("<incremental>"));
        assert!(full.contains("<target file='/b/full.raw'/>"));
        assert!(full.contains("<disk name='vdb' backup='no'/>"));
        req.since = Some("skiff-0".into());
        let inc = backup_xml(&req);
        assert!(inc.contains("<incremental>skiff-0</incremental>"));
        assert!(inc.contains("<driver type='qcow2'/>"));
        let cp = checkpoint_xml(&req);
        assert!(cp.contains("<name>skiff-1</name>"));
        assert!(cp.contains("<disk name='vda' checkpoint='bitmap'/>"));
        assert!(cp.contains("<disk name='vdb' checkpoint='no'/>"));
    }
}
