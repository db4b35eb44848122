//! Stored records. Each is a [`crate::store::Record`]; wire shapes live in `api::types`.

mod account;
mod api_key;
mod backup;
mod floating_ip;
mod job;
mod member;
mod project;
mod role;
mod security_group;
mod snapshot;
mod ssh_key;
mod template;
mod vm;
mod volume;
mod vpc;

pub use account::{Account, User};
pub use api_key::{ApiKey, ProjectAccess, RateLimitTier};
pub use backup::{Backup, BackupChain, BackupSchedule, BackupStatus};
pub use floating_ip::{FloatingIp, FloatingTarget};
pub use job::{Job, JobStatus};
pub use member::{Invitation, Member, MemberStatus};
pub use project::Project;
pub use role::CustomRole;
pub use security_group::{Family, SecurityGroup, SgDirection, SgProtocol, SgRemote, SgRule};
pub use snapshot::{Snapshot, SnapshotDisk, SnapshotKind};
pub use ssh_key::SshKey;
pub use template::{ImageOwner, SaveSource, Template};
pub use vm::{IpLease, Nic, Vm, VmNote, VmStatus, VmTag};
pub use volume::{Volume, VolumeStatus};
pub use vpc::{Vpc, VpcStatus};

/// Timestamps are UTC, serialised as RFC 3339.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// The current time, truncated to microseconds so it survives an RFC 3339 round trip.
pub fn now() -> Timestamp {
    let t = chrono::Utc::now();
    chrono::DurationRound::duration_trunc(t, chrono::TimeDelta::microseconds(1)).unwrap_or(t)
}

/// Primary key bytes of a UUID-keyed record.
pub fn uuid_key(id: &uuid::Uuid) -> Vec<u8> {
    id.hyphenated().to_string().into_bytes()
}
