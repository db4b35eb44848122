//! The libvirt backend (crate `virt`). One connection, shared; libvirt's client
//! library is thread-safe, and every call here blocks, so callers use the blocking pool.

use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::error::ErrorNumber;
use virt::sys;

use std::ffi::{CStr, CString};

use super::{
    xml, Accel, BackupProgress, ComputeError, DiskBackup, DomainSpec, Hypervisor, NicSpec,
    PowerState, VolumeDisk,
};

pub struct Libvirt {
    conn: Connect,
    accel: Accel,
}

fn fail(op: &'static str) -> impl Fn(virt::error::Error) -> ComputeError {
    move |e| ComputeError::Libvirt {
        op,
        message: e.message().to_string(),
    }
}

fn is_no_domain(e: &virt::error::Error) -> bool {
    e.code().is_known_and(|c| c == ErrorNumber::NoDomain)
}

/// libvirt says "domain is not running" (VIR_ERR_OPERATION_INVALID) for power actions
/// on a domain that is already off.
fn is_not_running(e: &virt::error::Error) -> bool {
    e.code()
        .is_known_and(|c| c == ErrorNumber::OperationInvalid)
}

/// libvirt's last error on this thread, as a [`ComputeError`] (for raw FFI calls).
fn last_error(op: &'static str) -> ComputeError {
    fail(op)(virt::error::Error::last_error())
}

fn cstring(s: &str) -> Result<CString, ComputeError> {
    CString::new(s).map_err(|_| ComputeError::Host {
        what: "a libvirt argument".into(),
        reason: "contains a NUL byte".into(),
    })
}

/// An owned `virDomainCheckpointPtr`, freed on drop.
struct Checkpoint(sys::virDomainCheckpointPtr);

impl Drop for Checkpoint {
    fn drop(&mut self) {
        // SAFETY: the pointer came from libvirt, is non-null and owned by this value alone.
        unsafe {
            sys::virDomainCheckpointFree(self.0);
        }
    }
}

impl Checkpoint {
    fn name(&self) -> String {
        // SAFETY: the checkpoint is live; libvirt returns a string owned by it (or null),
        // copied here before the checkpoint can be freed.
        unsafe {
            let p = sys::virDomainCheckpointGetName(self.0);
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }
}

impl Libvirt {
    /// Connects to `uri` (e.g. `qemu:///system`) and settles on KVM or TCG.
    pub fn connect(uri: &str, accel: Accel) -> Result<Self, ComputeError> {
        // libvirt's default handler prints every error, expected ones included (a
        // lookup of a domain that is gone); errors reach callers as values instead.
        virt::error::clear_error_callback();
        let conn = Connect::open(Some(uri)).map_err(fail("connect"))?;
        Ok(Libvirt { conn, accel })
    }

    fn domain(&self, name: &str) -> Result<Option<Domain>, ComputeError> {
        match self.conn.lookup_domain_by_name(name) {
            Ok(d) => Ok(Some(d)),
            Err(e) if is_no_domain(&e) => Ok(None),
            Err(e) => Err(fail("lookup")(e)),
        }
    }

    fn existing(&self, name: &str) -> Result<Domain, ComputeError> {
        self.domain(name)?
            .ok_or_else(|| ComputeError::NoDomain(name.to_string()))
    }

    /// The format nodes behind `targets` of the running domain `d`.
    fn format_nodes(&self, d: &Domain, targets: &[String]) -> Result<Vec<String>, ComputeError> {
        let live = d.xml_desc(0).map_err(fail("xml_desc"))?;
        let blocks = qmp(d, &serde_json::json!({ "execute": "query-block" }))?;
        super::format_nodes(&live, &blocks.to_string(), targets)
    }
}

/// One QMP command through libvirt's monitor passthrough (libvirt wraps none of the
/// internal-snapshot commands); QMP's own error is the error.
fn qmp(d: &Domain, cmd: &serde_json::Value) -> Result<serde_json::Value, ComputeError> {
    let out = d
        .qemu_monitor_command(&cmd.to_string(), 0)
        .map_err(fail("QMP command"))?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| ComputeError::Libvirt {
        op: "QMP command",
        message: format!("{e}: {out}"),
    })?;
    if let Some(desc) = v.get("error") {
        return Err(ComputeError::Libvirt {
            op: "QMP command",
            message: desc["desc"].as_str().unwrap_or("failed").to_string(),
        });
    }
    Ok(v)
}

impl Hypervisor for Libvirt {
    fn accel(&self) -> Accel {
        self.accel
    }

    fn define(&self, spec: &DomainSpec) -> Result<(), ComputeError> {
        self.conn
            .define_domain_xml(&xml::domain_xml(spec))
            .map(|_| ())
            .map_err(fail("define"))
    }

    fn start(&self, name: &str) -> Result<(), ComputeError> {
        self.existing(name)?
            .create()
            .map(|_| ())
            .map_err(fail("start"))
    }

    fn shutdown(&self, name: &str) -> Result<(), ComputeError> {
        match self.existing(name)?.shutdown() {
            Ok(_) => Ok(()),
            Err(e) if is_not_running(&e) => Ok(()),
            Err(e) => Err(fail("shutdown")(e)),
        }
    }

    fn destroy(&self, name: &str) -> Result<(), ComputeError> {
        let Some(d) = self.domain(name)? else {
            return Ok(());
        };
        match d.destroy() {
            Ok(_) => Ok(()),
            Err(e) if is_not_running(&e) => Ok(()),
            Err(e) => Err(fail("destroy")(e)),
        }
    }

    fn reboot(&self, name: &str, hard: bool) -> Result<(), ComputeError> {
        let d = self.existing(name)?;
        if hard {
            d.reset().map(|_| ()).map_err(fail("reset"))
        } else {
            d.reboot(sys::VIR_DOMAIN_REBOOT_DEFAULT)
                .map(|_| ())
                .map_err(fail("reboot"))
        }
    }

    fn undefine(&self, name: &str) -> Result<(), ComputeError> {
        let Some(d) = self.domain(name)? else {
            return Ok(());
        };
        let flags = sys::VIR_DOMAIN_UNDEFINE_NVRAM | sys::VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA;
        match d.undefine_flags(flags) {
            Ok(()) => Ok(()),
            Err(e) if is_no_domain(&e) => Ok(()),
            Err(e) => Err(fail("undefine")(e)),
        }
    }

    fn state(&self, name: &str) -> Result<Option<PowerState>, ComputeError> {
        let Some(d) = self.domain(name)? else {
            return Ok(None);
        };
        let (state, _) = match d.state() {
            Ok(s) => s,
            Err(e) if is_no_domain(&e) => return Ok(None),
            Err(e) => return Err(fail("state")(e)),
        };
        Ok(Some(match state {
            virt::enumutil::Enum::Known(DomainState::Running) => PowerState::Running,
            virt::enumutil::Enum::Known(DomainState::Paused) => PowerState::Paused,
            virt::enumutil::Enum::Known(DomainState::Shutoff) => PowerState::ShutOff,
            virt::enumutil::Enum::Known(DomainState::Crashed) => PowerState::Crashed,
            _ => PowerState::Other,
        }))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, ComputeError> {
        let domains = self.conn.list_all_domains(0).map_err(fail("list"))?;
        let mut names = Vec::new();
        for d in domains {
            let n = d.name().map_err(fail("name"))?;
            if n.starts_with(prefix) {
                names.push(n);
            }
        }
        names.sort();
        Ok(names)
    }

    fn attach_disk(&self, name: &str, disk: &VolumeDisk) -> Result<(), ComputeError> {
        let d = self.existing(name)?;
        let x = cstring(&xml::volume_disk_xml(disk))?;
        // SAFETY: `d` keeps the domain pointer valid for the call; the XML is
        // NUL-terminated and outlives it.
        let rc = unsafe {
            sys::virDomainAttachDeviceFlags(d.as_ptr(), x.as_ptr(), sys::VIR_DOMAIN_AFFECT_LIVE)
        };
        if rc < 0 {
            return Err(last_error("attach disk"));
        }
        Ok(())
    }

    fn detach_disk(&self, name: &str, disk: &VolumeDisk) -> Result<(), ComputeError> {
        let d = self.existing(name)?;
        let x = cstring(&xml::volume_disk_xml(disk))?;
        // SAFETY: as in attach_disk.
        let rc = unsafe {
            sys::virDomainDetachDeviceFlags(d.as_ptr(), x.as_ptr(), sys::VIR_DOMAIN_AFFECT_LIVE)
        };
        if rc < 0 {
            return Err(last_error("detach disk"));
        }
        Ok(())
    }

    fn live_disks(&self, name: &str) -> Result<Option<Vec<String>>, ComputeError> {
        let Some(d) = self.domain(name)? else {
            return Ok(None);
        };
        if !d.is_active().map_err(fail("is_active"))? {
            return Ok(None);
        }
        let x = d.xml_desc(0).map_err(fail("xml_desc"))?;
        Ok(Some(xml::disk_targets(&x)))
    }

    fn suspend(&self, name: &str) -> Result<(), ComputeError> {
        self.existing(name)?
            .suspend()
            .map(|_| ())
            .map_err(fail("suspend"))
    }

    fn attach_nic(&self, name: &str, nic: &NicSpec) -> Result<(), ComputeError> {
        let d = self.existing(name)?;
        let x = cstring(&xml::interface_xml(nic))?;
        // SAFETY: as in attach_disk.
        let rc = unsafe {
            sys::virDomainAttachDeviceFlags(d.as_ptr(), x.as_ptr(), sys::VIR_DOMAIN_AFFECT_LIVE)
        };
        if rc < 0 {
            return Err(last_error("attach NIC"));
        }
        Ok(())
    }

    fn detach_nic(&self, name: &str, nic: &NicSpec) -> Result<(), ComputeError> {
        let d = self.existing(name)?;
        let x = cstring(&xml::interface_xml(nic))?;
        // SAFETY: as in attach_disk.
        let rc = unsafe {
            sys::virDomainDetachDeviceFlags(d.as_ptr(), x.as_ptr(), sys::VIR_DOMAIN_AFFECT_LIVE)
        };
        if rc < 0 {
            return Err(last_error("detach NIC"));
        }
        Ok(())
    }

    fn live_macs(&self, name: &str) -> Result<Option<Vec<String>>, ComputeError> {
        let Some(d) = self.domain(name)? else {
            return Ok(None);
        };
        if !d.is_active().map_err(fail("is_active"))? {
            return Ok(None);
        }
        let x = d.xml_desc(0).map_err(fail("xml_desc"))?;
        Ok(Some(xml::interface_macs(&x)))
    }

    fn block_resize(&self, name: &str, target: &str, bytes: u64) -> Result<(), ComputeError> {
        let d = self.existing(name)?;
        let t = cstring(target)?;
        // SAFETY: valid domain pointer and NUL-terminated target for the call.
        let rc = unsafe {
            sys::virDomainBlockResize(
                d.as_ptr(),
                t.as_ptr(),
                bytes,
                sys::VIR_DOMAIN_BLOCK_RESIZE_BYTES,
            )
        };
        if rc < 0 {
            return Err(last_error("block resize"));
        }
        Ok(())
    }

    fn snapshot_running(
        &self,
        name: &str,
        targets: &[String],
        tag: &str,
    ) -> Result<bool, ComputeError> {
        let d = self.existing(name)?;
        let nodes = self.format_nodes(&d, targets)?;
        let actions: Vec<serde_json::Value> = nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "type": "blockdev-snapshot-internal-sync",
                    "data": { "device": n, "name": tag },
                })
            })
            .collect();
        let cmd = serde_json::json!({
            "execute": "transaction",
            "arguments": { "actions": actions },
        });
        // Freeze only a guest whose agent answers now: a dead agent would hold the
        // snapshot for libvirt's agent timeout and still freeze nothing.
        let frozen = self.agent_alive(name) && {
            // SAFETY: `d` keeps the domain pointer valid; no mount points (all file
            // systems), no flags.
            unsafe { sys::virDomainFSFreeze(d.as_ptr(), std::ptr::null_mut(), 0, 0) >= 0 }
        };
        let taken = qmp(&d, &cmd);
        if frozen {
            // SAFETY: as above. Thawed whatever the snapshot did.
            if unsafe { sys::virDomainFSThaw(d.as_ptr(), std::ptr::null_mut(), 0, 0) } < 0 {
                tracing::warn!(domain = name, error = %last_error("thaw"), "thawing the guest's file systems failed");
            }
        }
        taken.map(|_| frozen)
    }

    fn delete_snapshot_running(
        &self,
        name: &str,
        target: &str,
        tag: &str,
    ) -> Result<(), ComputeError> {
        let d = self.existing(name)?;
        let node = self.format_nodes(&d, &[target.to_string()])?.remove(0);
        let cmd = serde_json::json!({
            "execute": "blockdev-snapshot-delete-internal-sync",
            "arguments": { "device": node, "name": tag },
        });
        match qmp(&d, &cmd) {
            Err(ComputeError::Libvirt { message, .. }) if message.contains("does not exist") => {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    fn vnc_address(&self, name: &str) -> Result<Option<super::VncListener>, ComputeError> {
        let Some(d) = self.domain(name)? else {
            return Ok(None);
        };
        if !d.is_active().map_err(fail("is_active"))? {
            return Ok(None);
        }
        let xml = d.xml_desc(0).map_err(fail("xml_desc"))?;
        Ok(super::vnc_in_xml(&xml))
    }

    fn agent_alive(&self, name: &str) -> bool {
        let Ok(Some(d)) = self.domain(name) else {
            return false;
        };
        d.qemu_agent_command(r#"{"execute":"guest-ping"}"#, 2, 0)
            .is_ok()
    }

    fn set_password_hash(&self, name: &str, user: &str, hash: &str) -> Result<(), ComputeError> {
        self.existing(name)?
            .set_user_password(user, hash, sys::VIR_DOMAIN_PASSWORD_ENCRYPTED)
            .map_err(fail("set password"))
    }

    fn start_paused(&self, name: &str) -> Result<(), ComputeError> {
        self.existing(name)?
            .create_with_flags(sys::VIR_DOMAIN_START_PAUSED)
            .map_err(fail("start paused"))
    }

    fn resume(&self, name: &str) -> Result<(), ComputeError> {
        self.existing(name)?
            .resume()
            .map(|_| ())
            .map_err(fail("resume"))
    }

    fn backup_begin(&self, name: &str, req: &DiskBackup) -> Result<(), ComputeError> {
        let d = self.existing(name)?;
        let backup = cstring(&xml::backup_xml(req))?;
        let checkpoint = cstring(&xml::checkpoint_xml(req))?;
        // SAFETY: `d` keeps the domain pointer valid for the call; both strings are
        // NUL-terminated and outlive it; libvirt copies what it keeps.
        let rc = unsafe {
            sys::virDomainBackupBegin(d.as_ptr(), backup.as_ptr(), checkpoint.as_ptr(), 0)
        };
        if rc < 0 {
            return Err(last_error("backup-begin"));
        }
        Ok(())
    }

    fn backup_progress(&self, name: &str) -> Result<BackupProgress, ComputeError> {
        let d = self.existing(name)?;
        let info = match d.job_info() {
            Ok(i) => i,
            // The domain stopped under the job.
            Err(e) if is_not_running(&e) => {
                return Ok(BackupProgress::Failed("the domain stopped".into()))
            }
            Err(e) => return Err(fail("job info")(e)),
        };
        if info.r#type != sys::VIR_DOMAIN_JOB_NONE as i32 {
            return Ok(BackupProgress::Running {
                done: info.data_processed.unwrap_or(0),
                total: info.data_total.unwrap_or(0),
            });
        }
        // No job now: how did the last one end?
        let (mut kind, mut params, mut n): (i32, sys::virTypedParameterPtr, i32) =
            (0, std::ptr::null_mut(), 0);
        // SAFETY: out-pointers to locals; libvirt allocates `params`, freed below.
        let rc = unsafe {
            sys::virDomainGetJobStats(
                d.as_ptr(),
                &mut kind,
                &mut params,
                &mut n,
                sys::VIR_DOMAIN_JOB_STATS_COMPLETED,
            )
        };
        if rc < 0 {
            return Err(last_error("job stats"));
        }
        let mut message = None;
        if !params.is_null() {
            let mut p: *const std::os::raw::c_char = std::ptr::null();
            let key = c"errmsg";
            // SAFETY: `params`/`n` are what libvirt returned; the string found points into
            // `params` and is copied before they are freed.
            unsafe {
                if sys::virTypedParamsGetString(params, n, key.as_ptr(), &mut p) == 1
                    && !p.is_null()
                {
                    message = Some(CStr::from_ptr(p).to_string_lossy().into_owned());
                }
                sys::virTypedParamsFree(params, n);
            }
        }
        Ok(match kind as u32 {
            sys::VIR_DOMAIN_JOB_COMPLETED => BackupProgress::Completed,
            sys::VIR_DOMAIN_JOB_CANCELLED => BackupProgress::Failed("cancelled".into()),
            _ => BackupProgress::Failed(message.unwrap_or_else(|| "the backup job failed".into())),
        })
    }

    fn abort_job(&self, name: &str) -> Result<(), ComputeError> {
        let Some(d) = self.domain(name)? else {
            return Ok(());
        };
        // SAFETY: `d` keeps the domain pointer valid for the call.
        if unsafe { sys::virDomainAbortJob(d.as_ptr()) } < 0 {
            let e = virt::error::Error::last_error();
            if !is_not_running(&e) {
                return Err(fail("abort job")(e));
            }
        }
        Ok(())
    }

    fn checkpoints(&self, name: &str) -> Result<Vec<String>, ComputeError> {
        let d = self.existing(name)?;
        let mut list: *mut sys::virDomainCheckpointPtr = std::ptr::null_mut();
        // SAFETY: `list` is an out-pointer; libvirt allocates the array and one reference
        // per checkpoint, all released below.
        let n = unsafe { sys::virDomainListAllCheckpoints(d.as_ptr(), &mut list, 0) };
        if n < 0 {
            return Err(last_error("list checkpoints"));
        }
        let mut names = Vec::with_capacity(n as usize);
        for i in 0..n as usize {
            // SAFETY: libvirt returned `n` valid pointers; each is owned (and freed) once.
            let cp = Checkpoint(unsafe { *list.add(i) });
            names.push(cp.name());
        }
        if !list.is_null() {
            // SAFETY: the array was allocated by libvirt with malloc; its entries are freed.
            unsafe { libc::free(list.cast()) };
        }
        names.sort();
        Ok(names)
    }

    fn delete_checkpoint(&self, name: &str, checkpoint: &str) -> Result<(), ComputeError> {
        let d = self.existing(name)?;
        let cname = cstring(checkpoint)?;
        // SAFETY: valid domain pointer and NUL-terminated name for the call.
        let p = unsafe { sys::virDomainCheckpointLookupByName(d.as_ptr(), cname.as_ptr(), 0) };
        if p.is_null() {
            return Ok(()); // gone already
        }
        let cp = Checkpoint(p);
        // SAFETY: `cp` is a live checkpoint for both calls.
        if unsafe { sys::virDomainCheckpointDelete(cp.0, 0) } == 0 {
            return Ok(());
        }
        let first = last_error("delete checkpoint");
        // SAFETY: as above.
        if unsafe {
            sys::virDomainCheckpointDelete(cp.0, sys::VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY)
        } == 0
        {
            tracing::info!(domain = name, checkpoint, error = %first, "checkpoint's bitmap was gone; removed its record");
            return Ok(());
        }
        Err(first)
    }
}
