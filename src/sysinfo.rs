//! What this host's kernel reports about itself: filesystem space, memory, the kernel
//! version. Read on demand; cheap.

use std::path::Path;

/// Space of the filesystem holding a path.
pub struct FsSpace {
    pub total_gib: f64,
    /// Free for unprivileged writers.
    pub free_gib: f64,
    /// The filesystem's magic number (`statfs.f_type`).
    pub fs_type: i64,
}

const GIB: f64 = (1u64 << 30) as f64;

/// The filesystem holding `path`, or its nearest existing parent (a data directory
/// that does not exist yet lands where it will be created).
pub fn fs_space(path: &Path) -> Option<FsSpace> {
    let mut p = path.to_path_buf();
    while !p.exists() {
        p = p.parent()?.to_path_buf();
    }
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` is writable memory of the right
    // type, filled by statfs when it returns 0.
    if unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statfs returned 0.
    let st = unsafe { st.assume_init() };
    let bsize = st.f_bsize as f64;
    // f_type's C type differs between architectures; i64 holds every one of them.
    #[allow(clippy::unnecessary_cast)]
    Some(FsSpace {
        total_gib: st.f_blocks as f64 * bsize / GIB,
        free_gib: st.f_bavail as f64 * bsize / GIB,
        fs_type: st.f_type as i64,
    })
}

/// A `/proc/meminfo` field in MiB (`MemTotal`, `MemAvailable`, …).
pub fn meminfo_mib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib / 1024)
}

/// The running kernel's (major, minor) version.
pub fn kernel_version() -> Option<(u32, u32)> {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut it = r.trim().split(['.', '-']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}
