//! The jobs that change a VM on the host: create, power actions, delete. Each step is
//! safe to repeat, so a job a crash interrupted is simply run again from the start:
//! it finds what the first attempt already made and goes on from there.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::compute::seed::{write_seed, GuestConfig, GuestNic};
use crate::compute::{disk, DomainSpec, Hypervisor, NicSpec, PowerState, VolumeDisk};
use crate::config::{ComputeConfig, TemplateConfig};
use crate::jobs::{JobContext, JobHandler};
use crate::model::{now, uuid_key, IpLease, Vm, VmStatus, Volume};
use crate::store::{StoreError, Table};

/// What the VM jobs work with.
pub(crate) struct VmHost {
    pub vms: Table<Vm>,
    pub leases: Table<IpLease>,
    pub volumes: Table<Volume>,
    pub snapshots: Table<crate::model::Snapshot>,
    /// Where volume files live (`<id>.qcow2`).
    pub volume_root: PathBuf,
    /// Where saved images are written (`<id>.qcow2`).
    pub image_root: PathBuf,
    pub hv: Arc<dyn Hypervisor>,
    pub cfg: ComputeConfig,
    pub vm_root: PathBuf,
    pub templates: Vec<TemplateConfig>,
    pub imported: Table<crate::model::Template>,
    pub nameservers: Vec<String>,
    /// Security groups: applied between creating the tap and running the guest.
    pub firewall: Option<Arc<super::firewall::FirewallHost>>,
    /// The operator turned the firewall off: guests start unfiltered. Otherwise no
    /// firewall means no start.
    pub firewall_disabled: bool,
    /// How QEMU reaches the VM's directory.
    pub access: crate::compute::access::QemuAccess,
    /// VPCs' host objects: a VPC NIC's bridge is made sure of before every start.
    pub net: Arc<super::vpc_jobs::NetHost>,
    /// The host's address in the public IPv6 prefix (the guests' IPv6 gateway).
    pub gateway6: Option<String>,
}

pub(crate) const KINDS: &[&str] = &[
    "vm.create",
    "vm.start",
    "vm.stop",
    "vm.reboot",
    "vm.reboot_hard",
    "vm.delete",
    "vm.reconfigure",
    "vm.reset_password",
    "vm.reinstall",
    "vm.nic_attach",
    "vm.nic_detach",
];

/// One handler per kind, all sharing the host.
pub(crate) struct VmJob {
    pub kind: &'static str,
    pub host: Arc<VmHost>,
}

impl JobHandler for VmJob {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn resumable(&self) -> bool {
        true
    }

    fn run(&self, ctx: &JobContext) -> Result<(), String> {
        let id = ctx.params()["vm_id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or("job has no vm_id")?;
        let h = &self.host;
        let result = match self.kind {
            "vm.create" => h.create(&id),
            "vm.start" => h.power_on(&id),
            "vm.stop" => h.stop(&id),
            "vm.reboot" => h.reboot(&id, false),
            "vm.reboot_hard" => h.reboot(&id, true),
            "vm.delete" => {
                let delete_volumes = ctx.params()["volume_action"].as_str() == Some("delete");
                let delete_vpc = ctx.params()["delete_vpc"].as_bool() == Some(true);
                return h.delete(&id, delete_volumes, delete_vpc);
            }
            "vm.reconfigure" => h.reconfigure(&id),
            "vm.reset_password" => h.reset_password(&id),
            "vm.reinstall" => h.reinstall(&id),
            "vm.nic_attach" | "vm.nic_detach" => {
                let nic = ctx.params()["nic_id"].as_u64().ok_or("job has no nic_id")?;
                if self.kind == "vm.nic_attach" {
                    h.nic_attach(&id, nic)
                } else {
                    h.nic_detach(&id, nic)
                }
            }
            other => Err(format!("unknown VM job {other}")),
        };
        if let Err(e) = &result {
            tracing::warn!(vm_id = %id, error = %e, "VM job failed");
            let _ = h.set_status(&id, VmStatus::Failure);
        }
        result
    }
}

impl VmHost {
    pub(super) fn dir(&self, id: &Uuid) -> PathBuf {
        self.vm_root.join(id.to_string())
    }

    fn console_log(&self, id: &Uuid) -> PathBuf {
        self.dir(id).join("console.log")
    }

    /// Where the console log ends now: boot markers count only after this.
    fn log_offset(&self, id: &Uuid) -> u64 {
        std::fs::metadata(self.console_log(id))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Whether a boot marker appeared in the console log after `offset`.
    fn booted_since(&self, id: &Uuid, offset: u64) -> bool {
        read_from(&self.console_log(id), offset).is_some_and(|text| {
            self.cfg
                .ready_markers
                .iter()
                .any(|m| text.contains(m.as_str()))
        })
    }

    pub(super) fn load(&self, id: &Uuid) -> Result<Vm, String> {
        self.vms
            .get(&uuid_key(id))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("VM {id} no longer exists"))
    }

    pub(super) fn set_status(&self, id: &Uuid, status: VmStatus) -> Result<(), String> {
        self.vms
            .update::<StoreError>(&uuid_key(id), |v| {
                v.status = status;
                v.updated_at = now();
                Ok(())
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The domain of `vm`, its disk chain read from the disk's own (skiff-written)
    /// header. A base with a base of its own is refused rather than left to probing.
    fn spec(&self, vm: &Vm) -> Result<DomainSpec, String> {
        let dir = self.dir(&vm.id);
        let disk_path = dir.join("disk.qcow2");
        let disk_base = disk::backing_file(&disk_path).map_err(|e| e.to_string())?;
        if let Some(base) = &disk_base {
            if let Some(deeper) = disk::backing_file(base).map_err(|e| e.to_string())? {
                return Err(format!(
                    "the template image {} has a backing file ({}): import it as a standalone image",
                    base.display(),
                    deeper.display()
                ));
            }
        }
        Ok(DomainSpec {
            disk_base,
            name: vm.domain_name(),
            uuid: vm.id,
            vcpus: vm.vcpus.max(1) as u32,
            memory_mib: (vm.ram_gib.max(1) as u64) * 1024,
            disk: dir.join("disk.qcow2"),
            seed: Some(dir.join("seed.img")),
            nics: vm
                .nics
                .iter()
                .map(|n| NicSpec {
                    mac: n.mac.clone(),
                    bridge: n.bridge.clone(),
                    tap: n.tap.clone(),
                    mtu: n.mtu,
                })
                .collect(),
            volumes: self.volume_disks(&vm.id)?,
            serial_log: self.console_log(&vm.id),
            accel: self.hv.accel(),
        })
    }

    /// The volume file of volume `id`.
    pub(super) fn volume_path(&self, id: u64) -> PathBuf {
        self.volume_root.join(format!("{id}.qcow2"))
    }

    /// The volumes the VM's definition holds: attached ones and one being attached;
    /// not one being detached, nor one whose file is still being made. By target.
    pub(super) fn volume_disks(&self, vm: &Uuid) -> Result<Vec<VolumeDisk>, String> {
        let mut out: Vec<VolumeDisk> = self
            .volumes
            .by_index(Volume::BY_VM, &uuid_key(vm))
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|v| matches!(v.pending.as_deref(), None | Some("attach") | Some("resize")))
            .filter_map(|v| {
                Some(VolumeDisk {
                    path: self.volume_path(v.id),
                    serial: v.serial(),
                    target: v.device?,
                })
            })
            .collect();
        out.sort_by(|a, b| (a.target.len(), &a.target).cmp(&(b.target.len(), &b.target)));
        Ok(out)
    }

    /// (Re)defines the domain from the record and the disk as it is now.
    pub(super) fn define(&self, vm: &Vm) -> Result<(), String> {
        self.hv.define(&self.spec(vm)?).map_err(|e| e.to_string())
    }

    pub(super) fn guest_config(&self, vm: &Vm) -> GuestConfig {
        // One default route: the public NIC's, or a VPC-only VM's VPC router.
        let primary = vm
            .nics
            .iter()
            .find(|n| n.kind == "public")
            .or(vm.nics.first())
            .map(|n| n.id);
        GuestConfig {
            instance_id: vm.instance_id.clone(),
            hostname: hostname_of(&vm.name),
            ssh_keys: vm.ssh_keys.clone(),
            password_hash: vm.password_hash.clone(),
            nics: vm
                .nics
                .iter()
                .map(|n| GuestNic {
                    mac: n.mac.clone(),
                    addresses: std::iter::once(format!("{}/{}", n.ip, n.prefix))
                        .chain(n.ip6.iter().map(|a| format!("{a}/64")))
                        .collect(),
                    gateway: (Some(n.id) == primary).then(|| n.gateway.clone()),
                    gateway6: n
                        .ip6
                        .as_ref()
                        .and(self.gateway6.as_ref())
                        .filter(|_| Some(n.id) == primary)
                        .cloned(),
                    mtu: n.mtu,
                })
                .collect(),
            nameservers: self.nameservers.clone(),
        }
    }

    fn create(&self, id: &Uuid) -> Result<(), String> {
        let vm = self.load(id)?;
        if vm.deleting {
            return Ok(());
        }
        self.set_status(id, VmStatus::Provisioning)?;
        self.provision(&vm)?;
        self.boot(&vm, false)
    }

    /// Makes the disk (if missing), the seed and the domain definition.
    fn provision(&self, vm: &Vm) -> Result<(), String> {
        let id = &vm.id;
        let dir = self.dir(id);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        // QEMU runs as its own user: it may enter the directory, not list it; libvirt
        // hands it the disk and the seed while the guest runs.
        self.access.traverse(&dir).map_err(|e| e.to_string())?;
        let disk_path = dir.join("disk.qcow2");
        if !disk_path.exists() {
            let image = match self.templates.iter().find(|t| t.id == vm.template_id) {
                Some(t) => t.image.clone().ok_or("the template has no image")?,
                None => {
                    self.imported
                        .get(&uuid_key(&vm.template_id))
                        .map_err(|e| e.to_string())?
                        .ok_or("the VM's template is no longer in the catalog")?
                        .image
                }
            };
            let image = &image;
            let tmp = dir.join("disk.qcow2.tmp");
            let _ = std::fs::remove_file(&tmp);
            disk::create_overlay(image, &tmp, vm.storage_gib as u64).map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &disk_path).map_err(|e| e.to_string())?;
        }
        write_seed(&dir.join("seed.img"), &self.guest_config(vm)).map_err(|e| e.to_string())?;
        self.define(vm)
    }

    /// Applies the record's size (after a resize) to the stopped domain and its disk.
    fn reconfigure(&self, id: &Uuid) -> Result<(), String> {
        let vm = self.load(id)?;
        let disk_path = self.dir(id).join("disk.qcow2");
        let want = vm.storage_gib as u64;
        if disk::virtual_size(&disk_path, disk::Format::Qcow2).map_err(|e| e.to_string())?
            < want << 30
        {
            disk::grow(&disk_path, want).map_err(|e| e.to_string())?;
        }
        self.define(&vm)?;
        self.set_status(id, VmStatus::Passive)
    }

    /// Puts the new hash in the seed (applied at the next boot under a new instance id)
    /// and, when the guest runs an agent, sets it right away.
    fn reset_password(&self, id: &Uuid) -> Result<(), String> {
        let vm = self.load(id)?;
        write_seed(&self.dir(id).join("seed.img"), &self.guest_config(&vm))
            .map_err(|e| e.to_string())?;
        if let Some(hash) = &vm.password_hash {
            let name = vm.domain_name();
            if self.hv.agent_alive(&name) {
                self.hv
                    .set_password_hash(&name, "root", hash)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// A fresh disk from the template; addresses, MACs and the domain stay.
    fn reinstall(&self, id: &Uuid) -> Result<(), String> {
        let vm = self.load(id)?;
        self.set_status(id, VmStatus::Provisioning)?;
        let name = vm.domain_name();
        self.hv.destroy(&name).map_err(|e| e.to_string())?;
        let disk_path = self.dir(id).join("disk.qcow2");
        match std::fs::remove_file(&disk_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("removing {}: {e}", disk_path.display())),
        }
        self.provision(&vm)?;
        self.boot(&vm, false)
    }

    /// Starts the domain (or, with `reset`, resets a running one) and waits until the
    /// guest says it is up. A domain already running is left alone unless `reset`, so
    /// a resumed job does not boot the guest twice.
    pub(super) fn boot(&self, vm: &Vm, reset: bool) -> Result<(), String> {
        self.set_status(&vm.id, VmStatus::Booting)?;
        let offset = self.log_offset(&vm.id);
        let name = vm.domain_name();
        let running = self.hv.state(&name).map_err(|e| e.to_string())? == Some(PowerState::Running);
        match (running, reset) {
            (false, _) => self.start_filtered(vm)?,
            (true, true) => self.hv.reboot(&name, true).map_err(|e| e.to_string())?,
            // Already running (a resumed job, or a start that raced a boot): it is up.
            (true, false) => return self.set_status(&vm.id, VmStatus::Active),
        }
        self.wait_ready(vm, offset)?;
        self.set_status(&vm.id, VmStatus::Active)
    }

    /// Starts the domain with its CPUs paused, puts the firewall on its new taps, then
    /// lets it run: the guest never sends a packet unfiltered. When its taps cannot be
    /// filtered, the domain is destroyed again and the boot fails.
    fn start_filtered(&self, vm: &Vm) -> Result<(), String> {
        let name = vm.domain_name();
        for vpc in vm.nics.iter().filter_map(|n| n.vpc_id.as_ref()) {
            self.net.ensure_vpc(vpc)?;
        }
        if vm.nics.iter().any(|n| n.vpc_id.is_some()) {
            self.net.sync_dhcp();
        }
        let Some(fw) = &self.firewall else {
            if self.firewall_disabled {
                return self.hv.start(&name).map_err(|e| e.to_string());
            }
            return Err(
                "security groups and anti-spoofing cannot be enforced on this host (the firewall did not load): the VM stays off"
                    .into(),
            );
        };
        self.hv.start_paused(&name).map_err(|e| e.to_string())?;
        let mut failed: Vec<String> = match fw.sync() {
            Ok(failed) => failed
                .into_iter()
                .filter(|(tap, _)| vm.nics.iter().any(|n| n.tap == *tap))
                .map(|(tap, e)| format!("{tap}: {e}"))
                .collect(),
            Err(e) => vec![e],
        };
        // A sync passes over taps that do not exist: every NIC's must, with its policy
        // (a tap libvirt named otherwise would carry an unfiltered guest).
        if failed.is_empty() {
            failed.extend(
                vm.nics
                    .iter()
                    .filter(|n| !fw.enforces(&n.tap))
                    .map(|n| format!("{}: no such tap, or no policy on it", n.tap)),
            );
        }
        if !failed.is_empty() {
            let _ = self.hv.destroy(&name);
            return Err(format!(
                "security groups could not be applied, the VM stays off: {}",
                failed.join("; ")
            ));
        }
        self.hv.resume(&name).map_err(|e| e.to_string())
    }

    /// Waits for a sign of life from the guest: a boot marker on the serial console
    /// or an answering guest agent. A guest that shows neither in time is stopped and
    /// the boot fails with the console's tail, so `active` always means booted.
    fn wait_ready(&self, vm: &Vm, offset: u64) -> Result<(), String> {
        let name = &vm.domain_name();
        let started = Instant::now();
        let until = started + Duration::from_secs(self.cfg.boot_timeout_secs);
        let mut next_agent_probe = started + AGENT_PROBE_EVERY;
        loop {
            if self.booted_since(&vm.id, offset) {
                return Ok(());
            }
            match self.hv.state(name).map_err(|e| e.to_string())? {
                Some(PowerState::Running) | Some(PowerState::Other) | Some(PowerState::Paused) => {}
                other => {
                    return Err(format!(
                        "the guest stopped while booting ({other:?}); console tail:\n{}",
                        self.console_tail(&vm.id, offset)
                    ))
                }
            }
            let now = Instant::now();
            if now >= next_agent_probe {
                if self.hv.agent_alive(name) {
                    return Ok(());
                }
                next_agent_probe = Instant::now() + AGENT_PROBE_EVERY;
            }
            if now >= until {
                let _ = self.hv.destroy(name);
                return Err(format!(
                    "the guest did not boot within {} s (no boot marker on the serial console, no guest agent); it was stopped. Console tail:\n{}",
                    self.cfg.boot_timeout_secs,
                    self.console_tail(&vm.id, offset)
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The end of what the guest printed since `offset`, printable characters only.
    fn console_tail(&self, id: &Uuid, offset: u64) -> String {
        let text = read_from(&self.console_log(id), offset).unwrap_or_default();
        let clean: String = text
            .chars()
            .filter(|c| *c == '\n' || !c.is_control())
            .collect();
        let lines: Vec<&str> = clean.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(CONSOLE_TAIL_LINES)..].join("\n");
        let skip = tail.chars().count().saturating_sub(CONSOLE_TAIL_CHARS);
        let tail: String = tail.chars().skip(skip).collect();
        if tail.is_empty() {
            "(the guest printed nothing)".into()
        } else {
            tail
        }
    }

    fn power_on(&self, id: &Uuid) -> Result<(), String> {
        let vm = self.load(id)?;
        self.boot(&vm, false)
    }

    pub(super) fn wait_off(&self, name: &str, within: Duration) -> Result<bool, String> {
        let until = Instant::now() + within;
        loop {
            match self.hv.state(name).map_err(|e| e.to_string())? {
                Some(PowerState::ShutOff) | Some(PowerState::Crashed) | None => return Ok(true),
                _ if Instant::now() >= until => return Ok(false),
                _ => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    pub(super) fn stop(&self, id: &Uuid) -> Result<(), String> {
        let vm = self.load(id)?;
        self.set_status(id, VmStatus::Finalizing)?;
        let name = vm.domain_name();
        self.hv.shutdown(&name).map_err(|e| e.to_string())?;
        if !self.wait_off(&name, Duration::from_secs(self.cfg.stop_timeout_secs))? {
            tracing::info!(domain = %name, "guest ignored the power button; pulling the plug");
            self.hv.destroy(&name).map_err(|e| e.to_string())?;
        }
        self.set_status(id, VmStatus::Passive)
    }

    fn reboot(&self, id: &Uuid, hard: bool) -> Result<(), String> {
        let vm = self.load(id)?;
        let name = vm.domain_name();
        if hard {
            return self.boot(&vm, true);
        }
        // Ask first; a guest that does not come back up in time is reset.
        self.set_status(id, VmStatus::Booting)?;
        let offset = self.log_offset(id);
        self.hv.reboot(&name, false).map_err(|e| e.to_string())?;
        let until = Instant::now() + Duration::from_secs(self.cfg.stop_timeout_secs);
        while Instant::now() < until {
            if self.booted_since(id, offset) {
                return self.set_status(id, VmStatus::Active);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        tracing::info!(domain = %name, "guest ignored the reboot request; resetting it");
        self.boot(&vm, true)
    }

    /// Removes the domain, the VM's files and record; its volumes are detached (kept)
    /// or, with `delete_volumes`, deleted with it.
    fn delete(&self, id: &Uuid, delete_volumes: bool, delete_vpc: bool) -> Result<(), String> {
        let Some(vm) = self.vms.get(&uuid_key(id)).map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let name = vm.domain_name();
        self.hv.destroy(&name).map_err(|e| e.to_string())?;
        self.hv.undefine(&name).map_err(|e| e.to_string())?;
        self.release_volumes(id, delete_volumes)?;
        self.release_snapshots(id)?;
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("removing {}: {e}", dir.display())),
        }
        for nic in &vm.nics {
            let key = nic.lease_key();
            if let Some(lease) = self.leases.get(&key).map_err(|e| e.to_string())? {
                if lease.vm_id == vm.id {
                    self.leases.delete(&key).map_err(|e| e.to_string())?;
                }
            }
        }
        self.vms.delete(&uuid_key(id)).map_err(|e| e.to_string())?;
        if let Some(fw) = &self.firewall {
            fw.sync_logged();
        }
        self.net.drop_floating_of(&vm, &self.leases)?;
        if delete_vpc {
            for vpc in vm.nics.iter().filter_map(|n| n.vpc_id.as_ref()) {
                self.net.delete_if_empty(vpc, &self.leases)?;
            }
        }
        if vm.nics.iter().any(|n| n.vpc_id.is_some()) {
            self.net.sync_dhcp();
        }
        Ok(())
    }
}

/// How often a booting guest's agent is asked whether it is up (each ask may wait 2 s).
const AGENT_PROBE_EVERY: Duration = Duration::from_secs(3);
/// Console lines kept in a failed boot's error.
const CONSOLE_TAIL_LINES: usize = 20;
const CONSOLE_TAIL_CHARS: usize = 2000;

fn read_from(log: &Path, offset: u64) -> Option<String> {
    let mut f = std::fs::File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    // virtlogd rotates the log; after a rotation read the new file from its start.
    let start = if len < offset { 0 } else { offset };
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// A hostname from a display name: `[a-z0-9-]`, 1–63 characters.
pub(crate) fn hostname_of(name: &str) -> String {
    let mut h: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    h.truncate(63);
    let h = h.trim_matches('-').to_string();
    if h.is_empty() {
        "vm".into()
    } else {
        h
    }
}

#[cfg(test)]
mod tests {
    use super::hostname_of;

    #[test]
    fn hostnames_are_dns_safe() {
        assert_eq!(hostname_of("My Web_Server"), "my-web-server");
        assert_eq!(hostname_of("---"), "vm");
        assert_eq!(hostname_of(&"a".repeat(80)).len(), 63);
    }
}
