//! Compute: the `Hypervisor` trait and its libvirt implementation, the domain XML it
//! defines, guest disks (thin qcow2 overlays) and NoCloud seeds. A driver: it owns
//! host objects and knows nothing of records, projects or HTTP.

pub mod access;
pub mod disk;
mod libvirt;
pub mod seed;
pub mod volume;
pub mod xml;

pub use libvirt::Libvirt;

use std::path::PathBuf;

use uuid::Uuid;

/// Errors of the compute driver.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// libvirt refused or failed an operation.
    #[error("libvirt {op} failed: {message}")]
    Libvirt { op: &'static str, message: String },
    /// No domain of that name exists.
    #[error("no domain named {0}")]
    NoDomain(String),
    /// A disk or seed operation on the host failed.
    #[error("{what}: {reason}")]
    Host { what: String, reason: String },
}

/// Hardware acceleration of guests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
    /// QEMU's software emulation: slow, but works everywhere.
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// KVM when the CPU has VMX/SVM and /dev/kvm opens; TCG otherwise.
    pub fn detect() -> Accel {
        let cpu_can = std::fs::read_to_string("/proc/cpuinfo")
            .map(|c| {
                c.lines()
                    .filter(|l| l.starts_with("flags"))
                    .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
            })
            .unwrap_or(false);
        let dev_ok = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if cpu_can && dev_ok {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }
}

/// One guest NIC on a host bridge.
#[derive(Clone, Debug, PartialEq)]
pub struct NicSpec {
    pub mac: String,
    pub bridge: String,
    /// Host-side tap name (at most 15 bytes); libvirt creates it at every start.
    pub tap: String,
    /// The tap's MTU, also offered to the guest's virtio driver (`host_mtu`).
    pub mtu: Option<u32>,
}

/// Everything a domain is made of; the service builds it from a VM record.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainSpec {
    pub name: String,
    pub uuid: Uuid,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk: PathBuf,
    /// The qcow2 base under `disk` (itself standalone), or `None` when `disk` stands
    /// alone. Written into the XML so that libvirt never probes a chain.
    pub disk_base: Option<PathBuf>,
    /// NoCloud seed image (label `cidata`), attached read-only as the second disk.
    pub seed: Option<PathBuf>,
    pub nics: Vec<NicSpec>,
    /// Block volumes, after the seed (`vdc`…).
    pub volumes: Vec<VolumeDisk>,
    /// The serial console's log, written (and rotated) by virtlogd.
    pub serial_log: PathBuf,
    pub accel: Accel,
}

/// A block volume on a domain: a standalone qcow2.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeDisk {
    pub path: std::path::PathBuf,
    /// Target device (`vdc`…), unique in the domain.
    pub target: String,
    /// What the guest reads as the disk's serial (by-id name).
    pub serial: String,
}

/// Power state of a domain as the host sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerState {
    Running,
    Paused,
    ShutOff,
    Crashed,
    /// Shutting down, suspended, or a state libvirt added later.
    Other,
}

/// A disk backup the hypervisor copies out of a running guest (libvirt push mode), with
/// a checkpoint at the same instant so the next backup can ask for what changed since.
#[derive(Clone, Debug, PartialEq)]
pub struct DiskBackup {
    /// Guest disk to copy (`vda`).
    pub disk: String,
    /// Other disks of the domain, left out of backup and checkpoint (the seed).
    pub skip: Vec<String>,
    /// Output file. A full backup writes it raw; an incremental one writes a qcow2
    /// holding only the changed clusters, backed by the live disk.
    pub target: PathBuf,
    /// Checkpoint the changes are counted from; `None` for a full copy.
    pub since: Option<String>,
    /// Checkpoint created with this backup.
    pub checkpoint: String,
}

/// Where a hypervisor backup job is.
#[derive(Clone, Debug, PartialEq)]
pub enum BackupProgress {
    Running { done: u64, total: u64 },
    Completed,
    Failed(String),
}

/// A hypervisor backend. Calls block: run them on the blocking pool.
pub trait Hypervisor: Send + Sync + 'static {
    fn accel(&self) -> Accel;
    /// Defines (or redefines) a persistent domain; does not start it.
    fn define(&self, spec: &DomainSpec) -> Result<(), ComputeError>;
    fn start(&self, name: &str) -> Result<(), ComputeError>;
    /// Asks the guest to power off (ACPI).
    fn shutdown(&self, name: &str) -> Result<(), ComputeError>;
    /// Pulls the plug. A domain already off is not an error.
    fn destroy(&self, name: &str) -> Result<(), ComputeError>;
    /// `hard`: reset like a power button; otherwise ask the guest.
    fn reboot(&self, name: &str, hard: bool) -> Result<(), ComputeError>;
    /// Removes the definition (the domain must be off). A missing domain is not an error.
    fn undefine(&self, name: &str) -> Result<(), ComputeError>;
    /// `None` when no such domain is defined.
    fn state(&self, name: &str) -> Result<Option<PowerState>, ComputeError>;
    /// Names of the domains whose name starts with `prefix`.
    fn list(&self, prefix: &str) -> Result<Vec<String>, ComputeError>;
    /// Whether a QEMU guest agent answers in the running guest.
    fn agent_alive(&self, name: &str) -> bool;
    /// Sets `user`'s password to a crypt(3) hash through the guest agent.
    fn set_password_hash(&self, name: &str, user: &str, hash: &str) -> Result<(), ComputeError>;
    /// Starts the domain with its CPUs paused: the disk is live (for a backup of a
    /// stopped VM) but the guest does not run.
    fn start_paused(&self, name: &str) -> Result<(), ComputeError>;
    /// Lets a paused domain's CPUs run.
    fn resume(&self, name: &str) -> Result<(), ComputeError>;
    /// Starts a backup job on a running domain; poll it with `backup_progress`.
    fn backup_begin(&self, name: &str, req: &DiskBackup) -> Result<(), ComputeError>;
    fn backup_progress(&self, name: &str) -> Result<BackupProgress, ComputeError>;
    /// Cancels the domain's running job, if any.
    fn abort_job(&self, name: &str) -> Result<(), ComputeError>;
    /// The domain's checkpoint names.
    fn checkpoints(&self, name: &str) -> Result<Vec<String>, ComputeError>;
    /// Removes a checkpoint and its bitmap; when the bitmap is gone already (a new
    /// disk), only libvirt's record of it.
    fn delete_checkpoint(&self, name: &str, checkpoint: &str) -> Result<(), ComputeError>;
    /// Plugs a volume into the running domain (its persistent definition is the
    /// caller's, through `define`).
    fn attach_disk(&self, name: &str, disk: &VolumeDisk) -> Result<(), ComputeError>;
    /// Asks the running domain to unplug a volume; the guest completes it, so callers
    /// watch `live_disks` for the target to go.
    fn detach_disk(&self, name: &str, disk: &VolumeDisk) -> Result<(), ComputeError>;
    /// Target devices of the running domain's disks; `None` when it is not running.
    fn live_disks(&self, name: &str) -> Result<Option<Vec<String>>, ComputeError>;
    /// Pauses a running guest's CPUs (`resume` lets it go on).
    fn suspend(&self, name: &str) -> Result<(), ComputeError>;
    /// Plugs a NIC into the running domain (the definition is `define`'s).
    fn attach_nic(&self, name: &str, nic: &NicSpec) -> Result<(), ComputeError>;
    /// Asks the running guest to let go of a NIC; it is gone once `live_macs` stops
    /// listing it.
    fn detach_nic(&self, name: &str, nic: &NicSpec) -> Result<(), ComputeError>;
    /// The MACs of the running domain's NICs; `None` when it does not run.
    fn live_macs(&self, name: &str) -> Result<Option<Vec<String>>, ComputeError>;
    /// Grows a disk of the running domain (and its image) to `bytes`.
    fn block_resize(&self, name: &str, target: &str, bytes: u64) -> Result<(), ComputeError>;
    /// Takes internal snapshot `tag` of the running domain's disks `targets` at one
    /// instant (one QMP transaction: all of them or none), with the guest's file
    /// systems frozen around it when its agent answers. Says whether they were.
    fn snapshot_running(
        &self,
        name: &str,
        targets: &[String],
        tag: &str,
    ) -> Result<bool, ComputeError>;
    /// Deletes internal snapshot `tag` of the running domain's disk `target`; one
    /// the disk does not hold is not an error.
    fn delete_snapshot_running(
        &self,
        name: &str,
        target: &str,
        tag: &str,
    ) -> Result<(), ComputeError>;
    /// Where the running domain's VNC server listens; `None` when the domain is not
    /// running or has no VNC display.
    fn vnc_address(&self, name: &str) -> Result<Option<VncListener>, ComputeError>;
}

/// The format node of each disk in `targets` of a running domain: its live XML gives
/// the device alias of a target, QMP's `query-block` the node behind that device.
pub fn format_nodes(
    live_xml: &str,
    query_block: &str,
    targets: &[String],
) -> Result<Vec<String>, ComputeError> {
    let fail = |reason: String| ComputeError::Host {
        what: "finding the disks' block nodes".into(),
        reason,
    };
    let blocks: serde_json::Value =
        serde_json::from_str(query_block).map_err(|e| fail(e.to_string()))?;
    let blocks = blocks["return"]
        .as_array()
        .ok_or_else(|| fail(format!("unexpected query-block answer: {query_block}")))?;
    let aliases = xml::disk_aliases(live_xml);
    targets
        .iter()
        .map(|t| {
            let alias = aliases
                .iter()
                .find(|(target, alias)| target == t && !alias.is_empty())
                .map(|(_, a)| a)
                .ok_or_else(|| fail(format!("the running domain has no disk {t}")))?;
            let qdev = format!("/machine/peripheral/{alias}/");
            blocks
                .iter()
                .find(|b| {
                    b["qdev"]
                        .as_str()
                        .is_some_and(|q| q.starts_with(&qdev) || q == alias)
                })
                .and_then(|b| b["inserted"]["node-name"].as_str())
                .map(str::to_string)
                .ok_or_else(|| fail(format!("no block node for disk {t} ({alias})")))
        })
        .collect()
}

/// A running guest's VNC server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VncListener {
    /// A UNIX socket in libvirt's private per-domain directory (QEMU's user and root
    /// only): what skiff defines.
    Unix(PathBuf),
    /// A TCP port: domains defined before consoles moved to sockets, until restarted.
    Tcp(std::net::SocketAddr),
}

/// The VNC listener in a live domain XML: the first `<graphics type='vnc'>`, its
/// `<listen type='socket' socket=…>` or else its port on its `listen` address.
pub fn vnc_in_xml(xml: &str) -> Option<VncListener> {
    let start = xml.find("<graphics type='vnc'")?;
    let end = start
        + xml[start..]
            .find("</graphics>")
            .unwrap_or(xml.len() - start);
    let block = &xml[start..end];
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!(" {name}='");
        let at = tag.find(&key)? + key.len();
        Some(tag[at..at + tag[at..].find('\'')?].to_string())
    };
    if let Some(ls) = block.find("<listen type='socket'") {
        let tag = &block[ls..ls + block[ls..].find('>')?];
        return attr(tag, "socket").map(|p| VncListener::Unix(PathBuf::from(unescape(&p))));
    }
    let tag = &block[..block.find('>')?];
    let port: u16 = attr(tag, "port")?.parse().ok().filter(|p| *p > 0)?;
    let ip: std::net::IpAddr = attr(tag, "listen")
        .unwrap_or_else(|| "127.0.0.1".into())
        .parse()
        .ok()?;
    Some(VncListener::Tcp(std::net::SocketAddr::new(ip, port)))
}

fn unescape(s: &str) -> String {
    s.replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_nodes_follow_the_live_aliases() {
        let live = "<domain><devices><disk type='file' device='disk'><source file='/a' index='2'/><target dev='vda' bus='virtio'/><alias name='virtio-disk0'/></disk>\n<disk type='file'><target dev='vdc' bus='virtio'/><alias name='virtio-disk2'/></disk></devices></domain>";
        let qb = r#"{"return":[{"device":"","qdev":"/machine/peripheral/virtio-disk2/virtio-backend","inserted":{"node-name":"libvirt-1-format"}},{"device":"","qdev":"/machine/peripheral/virtio-disk0/virtio-backend","inserted":{"node-name":"libvirt-2-format"}}]}"#;
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            format_nodes(live, qb, &t(&["vda", "vdc"])).unwrap(),
            ["libvirt-2-format", "libvirt-1-format"]
        );
        assert!(format_nodes(live, qb, &t(&["vdd"])).is_err());
        assert!(format_nodes(live, r#"{"error":{}}"#, &t(&["vda"])).is_err());
    }

    #[test]
    fn vnc_listener_is_read_from_the_live_xml() {
        let live = "<domain><devices><graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'>\n<listen type='address' address='127.0.0.1'/></graphics></devices></domain>";
        assert_eq!(
            vnc_in_xml(live),
            Some(VncListener::Tcp("127.0.0.1:5901".parse().unwrap()))
        );
        let unix = "<graphics type='vnc'>\n<listen type='socket' socket='/var/lib/libvirt/qemu/domain-3-x/vnc.sock' autoGenerated='yes'/>\n</graphics>";
        assert_eq!(
            vnc_in_xml(unix),
            Some(VncListener::Unix(
                "/var/lib/libvirt/qemu/domain-3-x/vnc.sock".into()
            ))
        );
        let defined = "<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'>";
        assert_eq!(vnc_in_xml(defined), None);
        assert_eq!(vnc_in_xml("<domain/>"), None);
    }
}
