//! Domain XML from a [`DomainSpec`]. Pure, so it is tested without libvirt.

use std::fmt::Write;

use super::{Accel, DiskBackup, DomainSpec, NicSpec, VolumeDisk};

/// Escapes text for an XML attribute or element.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// One `<interface>` element: in a domain's definition, or alone for a hot-plug.
pub fn interface_xml(nic: &NicSpec) -> String {
    let mtu = nic
        .mtu
        .map(|m| format!("\n      <mtu size='{m}'/>"))
        .unwrap_or_default();
    format!(
        "    <interface type='bridge'>\n      <mac address='{}'/>\n      <source bridge='{}'/>\n      <target dev='{}'/>\n      <model type='virtio'/>{mtu}\n    </interface>\n",
        esc(&nic.mac),
        esc(&nic.bridge),
        esc(&nic.tap)
    )
}

/// The MACs of the interfaces in a (live) domain XML, lower case.
pub fn interface_macs(xml: &str) -> Vec<String> {
    xml.split("<interface ")
        .skip(1)
        .filter_map(|i| {
            let i = i.split("</interface>").next()?;
            let rest = i.split("<mac address='").nth(1)?;
            Some(rest.split('\'').next()?.to_ascii_lowercase())
        })
        .collect()
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
    for v in &spec.volumes {
        x.push_str(&volume_disk_xml(v));
    }
    // q35 plugs each device into a PCIe root port and libvirt adds only as many as the
    // defined devices take: spare ones let volumes be hot-plugged later.
    let devices = 6 + spec.nics.len() + spec.volumes.len();
    x.push_str("    <controller type='pci' index='0' model='pcie-root'/>\n");
    for i in 1..=devices + SPARE_PORTS {
        let _ = writeln!(
            x,
            "    <controller type='pci' index='{i}' model='pcie-root-port'/>"
        );
    }
    for nic in &spec.nics {
        x.push_str(&interface_xml(nic));
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

/// Free PCIe root ports a domain gets for hot-plugged volumes.
pub const SPARE_PORTS: usize = 8;

/// The `<disk>` of a volume: qcow2, standalone (`<backingStore/>`), with its serial.
pub fn volume_disk_xml(v: &VolumeDisk) -> String {
    format!(
        "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2' discard='unmap'/>\n      <source file='{}'/>\n      <backingStore/>\n      <target dev='{}' bus='virtio'/>\n      <serial>{}</serial>\n    </disk>\n",
        esc(&v.path.to_string_lossy()),
        esc(&v.target),
        esc(&v.serial)
    )
}

/// Target devices of the `<disk>`s in a domain XML, in order.
pub fn disk_targets(xml: &str) -> Vec<String> {
    disk_aliases(xml).into_iter().map(|(t, _)| t).collect()
}

/// `(target, alias)` of each `<disk>` in a domain XML; the alias is empty in a
/// definition (libvirt names devices when the domain runs).
pub fn disk_aliases(xml: &str) -> Vec<(String, String)> {
    let attr = |block: &str, open: &str| -> Option<String> {
        let v = &block[block.find(open)? + open.len()..];
        Some(v[..v.find('\'')?].to_string())
    };
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find("<disk ") {
        rest = &rest[at..];
        let end = rest.find("</disk>").unwrap_or(rest.len());
        let block = &rest[..end];
        if let Some(t) = attr(block, "<target dev='") {
            out.push((t, attr(block, "<alias name='").unwrap_or_default()));
        }
        rest = &rest[end..];
    }
    out
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
                mtu: Some(1450),
            }],
            volumes: vec![VolumeDisk {
                path: PathBuf::from("/var/lib/skiff/volumes/7.qcow2"),
                target: "vdc".into(),
                serial: "skiff-vol-7".into(),
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
        assert!(x.contains(
            "<target dev='sk-1'/>\n      <model type='virtio'/>\n      <mtu size='1450'/>"
        ));
        assert!(x.contains("<log file='/var/lib/skiff/vms/x/console.log' append='on'/>"));
        assert!(!x.contains("host-passthrough"));
        assert!(x.contains("<source file='/var/lib/skiff/volumes/7.qcow2'/>\n      <backingStore/>\n      <target dev='vdc' bus='virtio'/>\n      <serial>skiff-vol-7</serial>"));
        assert_eq!(disk_targets(&x), ["vda", "vdb", "vdc"]);
        assert_eq!(interface_macs(&x), ["52:54:00:00:00:01"]);
        assert_eq!(
            x.matches("model='pcie-root-port'").count(),
            6 + 1 + 1 + SPARE_PORTS
        );
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
