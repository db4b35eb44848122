//! The libvirt backend (crate `virt`). One connection, shared; libvirt's client
//! library is thread-safe, and every call here blocks, so callers use the blocking pool.

use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::error::ErrorNumber;
use virt::sys;

use super::{xml, Accel, ComputeError, DomainSpec, Hypervisor, PowerState};

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
}
