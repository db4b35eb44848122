//! Guest disks: thin qcow2 overlays on a template base, made with `qemu-img`.

use std::path::Path;
use std::process::Command;

use super::ComputeError;

fn qemu_img(args: &[&std::ffi::OsStr], what: String) -> Result<String, ComputeError> {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .map_err(|e| ComputeError::Host {
            what: what.clone(),
            reason: format!("cannot run qemu-img: {e}"),
        })?;
    if !out.status.success() {
        return Err(ComputeError::Host {
            what,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates `overlay` backed by `base` with a virtual size of `size_gib` (never smaller
/// than the base). The base is never written.
pub fn create_overlay(base: &Path, overlay: &Path, size_gib: u64) -> Result<(), ComputeError> {
    let size = format!("{size_gib}G");
    let base_size = virtual_size(base)?;
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "create".as_ref(),
        "-q".as_ref(),
        "-f".as_ref(),
        "qcow2".as_ref(),
        "-F".as_ref(),
        "qcow2".as_ref(),
        "-b".as_ref(),
        base.as_os_str(),
        overlay.as_os_str(),
    ];
    if size_gib * 1024 * 1024 * 1024 > base_size {
        args.push(size.as_ref());
    }
    qemu_img(&args, format!("creating disk {}", overlay.display())).map(|_| ())
}

/// Virtual size in bytes of an image.
pub fn virtual_size(image: &Path) -> Result<u64, ComputeError> {
    let out = qemu_img(
        &[
            "info".as_ref(),
            "--output=json".as_ref(),
            "-U".as_ref(),
            image.as_os_str(),
        ],
        format!("reading {}", image.display()),
    )?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| ComputeError::Host {
        what: format!("reading {}", image.display()),
        reason: e.to_string(),
    })?;
    v["virtual-size"]
        .as_u64()
        .ok_or_else(|| ComputeError::Host {
            what: format!("reading {}", image.display()),
            reason: "qemu-img info gave no virtual-size".into(),
        })
}

/// Grows an image to `size_gib`. Shrinking is refused by the service before this.
pub fn grow(image: &Path, size_gib: u64) -> Result<(), ComputeError> {
    qemu_img(
        &[
            "resize".as_ref(),
            "-q".as_ref(),
            image.as_os_str(),
            format!("{size_gib}G").as_ref(),
        ],
        format!("resizing {}", image.display()),
    )
    .map(|_| ())
}

/// Converts any image qemu-img reads into a standalone qcow2 at `out`.
pub fn convert_to_qcow2(input: &Path, out: &Path) -> Result<(), ComputeError> {
    qemu_img(
        &[
            "convert".as_ref(),
            "-q".as_ref(),
            "-O".as_ref(),
            "qcow2".as_ref(),
            input.as_os_str(),
            out.as_os_str(),
        ],
        format!("converting {}", input.display()),
    )
    .map(|_| ())
}

/// `qemu-img map --output=json` of a qcow2: which guest ranges the file itself holds
/// and where. `-U`: the backing file may be a running guest's disk.
pub fn map_json(image: &Path) -> Result<String, ComputeError> {
    qemu_img(
        &[
            "map".as_ref(),
            "--output=json".as_ref(),
            "-U".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            image.as_os_str(),
        ],
        format!("mapping {}", image.display()),
    )
}
