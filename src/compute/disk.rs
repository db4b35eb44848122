//! Guest disks: thin qcow2 overlays on a template base, made with `qemu-img`.
//!
//! Every call names the image's format (`-f`, `-F`): qemu-img never probes. A guest
//! controls every byte of its raw disk, so a probed format lets it write a qcow2
//! header naming a host file as its backing file and have that file read into its disk.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ComputeError;

/// The image formats skiff works with; always stated, never probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow2,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        }
    }
}

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

/// `qemu-img info --output=json` of `image` read as `format` (`None`: probed, only for
/// files the operator hands in). Backing files are not opened.
fn info(image: &Path, format: Option<Format>) -> Result<serde_json::Value, ComputeError> {
    let what = format!("reading {}", image.display());
    // A relative name such as `json:{…}` would be read as options, not as a file.
    if !image.is_absolute() {
        return Err(ComputeError::Host {
            what,
            reason: "the path must be absolute".into(),
        });
    }
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["info".as_ref(), "--output=json".as_ref(), "-U".as_ref()];
    if let Some(f) = format {
        args.push("-f".as_ref());
        args.push(f.as_str().as_ref());
    }
    args.push(image.as_os_str());
    let out = qemu_img(&args, what.clone())?;
    serde_json::from_str(&out).map_err(|e| ComputeError::Host {
        what,
        reason: e.to_string(),
    })
}

/// Creates `overlay` backed by the qcow2 `base` with a virtual size of `size_gib`
/// (never smaller than the base). The base is never written.
pub fn create_overlay(base: &Path, overlay: &Path, size_gib: u64) -> Result<(), ComputeError> {
    let size = format!("{size_gib}G");
    let base_size = virtual_size(base, Format::Qcow2)?;
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

/// Virtual size in bytes of an image of `format`.
pub fn virtual_size(image: &Path, format: Format) -> Result<u64, ComputeError> {
    info(image, Some(format))?["virtual-size"]
        .as_u64()
        .ok_or_else(|| ComputeError::Host {
            what: format!("reading {}", image.display()),
            reason: "qemu-img info gave no virtual-size".into(),
        })
}

/// The backing file a qcow2 made by skiff names, if any (its header is skiff's, not
/// the guest's: a guest writes only inside the virtual disk).
pub fn backing_file(image: &Path) -> Result<Option<PathBuf>, ComputeError> {
    let v = info(image, Some(Format::Qcow2))?;
    let name = v["full-backing-filename"]
        .as_str()
        .or_else(|| v["backing-filename"].as_str());
    Ok(name.map(PathBuf::from))
}

/// Checks an image the operator or a user hands in (template import) and says its
/// format: raw or a self-contained qcow2. A qcow2 naming a backing file or an external
/// data file is refused, as is every other format (VMDK descriptors, for one, name
/// extent files anywhere on the host).
pub fn inspect_foreign(image: &Path) -> Result<Format, ComputeError> {
    let refuse = |reason: String| ComputeError::Host {
        what: format!("image {}", image.display()),
        reason,
    };
    let v = info(image, None)?;
    let format = match v["format"].as_str() {
        Some("raw") => Format::Raw,
        Some("qcow2") => Format::Qcow2,
        other => {
            return Err(refuse(format!(
                "format {} is not accepted (raw or qcow2)",
                other.unwrap_or("unknown")
            )))
        }
    };
    if let Some(b) = v["backing-filename"].as_str() {
        return Err(refuse(format!("it names a backing file ({b})")));
    }
    if let Some(d) = v["format-specific"]["data"]["data-file"].as_str() {
        return Err(refuse(format!("it names an external data file ({d})")));
    }
    Ok(format)
}

/// Grows a qcow2 image to `size_gib`. Shrinking is refused by the service before this.
pub fn grow(image: &Path, size_gib: u64) -> Result<(), ComputeError> {
    qemu_img(
        &[
            "resize".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            image.as_os_str(),
            format!("{size_gib}G").as_ref(),
        ],
        format!("resizing {}", image.display()),
    )
    .map(|_| ())
}

/// Converts `input`, read as `format`, into a standalone qcow2 at `out`. A qcow2 input
/// is flattened with its backing chain.
pub fn convert_to_qcow2(input: &Path, format: Format, out: &Path) -> Result<(), ComputeError> {
    qemu_img(
        &[
            "convert".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            format.as_str().as_ref(),
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

/// The internal snapshots a qcow2 holds, by tag. `-U`: the image may be a running
/// guest's disk (QEMU holds its lock); the snapshot table is read as it was written.
pub fn snapshot_tags(image: &Path) -> Result<Vec<String>, ComputeError> {
    let v = info(image, Some(Format::Qcow2))?;
    Ok(v["snapshots"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// Bytes the image file takes on the host (its allocated clusters, all snapshots'
/// data included).
pub fn allocated_bytes(image: &Path) -> Result<u64, ComputeError> {
    Ok(info(image, Some(Format::Qcow2))?["actual-size"]
        .as_u64()
        .unwrap_or(0))
}

fn snapshot_op(image: &Path, op: &str, tag: &str, what: &str) -> Result<(), ComputeError> {
    // `qemu-img snapshot` has no `-f`: the format is named through image options
    // (commas in the path doubled, as they escape there), so it is not probed.
    let opts = format!(
        "driver=qcow2,file.filename={}",
        image.to_string_lossy().replace(',', ",,")
    );
    if !image.is_absolute() {
        return Err(ComputeError::Host {
            what: format!("{what} snapshot {tag} of {}", image.display()),
            reason: "the path must be absolute".into(),
        });
    }
    qemu_img(
        &[
            "snapshot".as_ref(),
            "-q".as_ref(),
            "--image-opts".as_ref(),
            op.as_ref(),
            tag.as_ref(),
            opts.as_ref(),
        ],
        format!("{what} snapshot {tag} of {}", image.display()),
    )
    .map(|_| ())
}

/// Takes internal snapshot `tag` of a qcow2 no guest runs on (QEMU's lock refuses
/// it otherwise). The snapshot shares every cluster with the disk until either is
/// written.
pub fn snapshot_create(image: &Path, tag: &str) -> Result<(), ComputeError> {
    snapshot_op(image, "-c", tag, "taking")
}

/// Puts the disk back to internal snapshot `tag`, virtual size included. Dirty
/// bitmaps must be gone first (`remove_bitmaps`): QEMU refuses to revert under them,
/// as they would no longer say what changed.
pub fn snapshot_apply(image: &Path, tag: &str) -> Result<(), ComputeError> {
    snapshot_op(image, "-a", tag, "reverting to")
}

/// Deletes internal snapshot `tag` of a qcow2 no guest runs on.
pub fn snapshot_delete(image: &Path, tag: &str) -> Result<(), ComputeError> {
    snapshot_op(image, "-d", tag, "deleting")
}

/// Removes every persistent dirty bitmap of a qcow2 no guest runs on.
pub fn remove_bitmaps(image: &Path) -> Result<(), ComputeError> {
    let v = info(image, Some(Format::Qcow2))?;
    let names: Vec<String> = v["format-specific"]["data"]["bitmaps"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|b| b["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for name in names {
        qemu_img(
            &[
                "bitmap".as_ref(),
                "-f".as_ref(),
                "qcow2".as_ref(),
                "--remove".as_ref(),
                image.as_os_str(),
                name.as_ref(),
            ],
            format!("removing bitmap {name} of {}", image.display()),
        )?;
    }
    Ok(())
}

/// Converts internal snapshot `tag` of the qcow2 `image` into a standalone qcow2 at
/// `out`. `-U`: the snapshot's clusters never change while it exists, so the disk may
/// be a running guest's.
pub fn convert_snapshot(image: &Path, tag: &str, out: &Path) -> Result<(), ComputeError> {
    qemu_img(
        &[
            "convert".as_ref(),
            "-q".as_ref(),
            "-U".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            "-l".as_ref(),
            format!("snapshot.name={tag}").as_ref(),
            "-O".as_ref(),
            "qcow2".as_ref(),
            image.as_os_str(),
            out.as_os_str(),
        ],
        format!("converting snapshot {tag} of {}", image.display()),
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    fn have_qemu_img() -> bool {
        let ok = Command::new("qemu-img").arg("--version").output().is_ok();
        if !ok && std::env::var("CI").as_deref() == Ok("true") {
            panic!("qemu-img is missing under CI=true");
        }
        ok
    }

    fn run(args: &[&str]) {
        let o = Command::new("qemu-img").args(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// A raw guest disk whose first bytes are a qcow2 header naming `secret` as its
    /// backing file, as a hostile guest would write it into its own disk.
    fn hostile_raw(dir: &Path, secret: &Path) -> PathBuf {
        let hdr = dir.join("hdr.qcow2");
        run(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            secret.to_str().unwrap(),
            "-F",
            "raw",
            hdr.to_str().unwrap(),
            "1M",
        ]);
        let raw = dir.join("guest.raw");
        std::fs::copy(&hdr, &raw).unwrap();
        let mut f = std::fs::OpenOptions::new().write(true).open(&raw).unwrap();
        f.seek(SeekFrom::Start(4 << 20)).unwrap();
        f.write_all(b"guest data").unwrap();
        raw
    }

    fn read_raw(qcow2: &Path, dir: &Path) -> Vec<u8> {
        let out = dir.join("check.raw");
        run(&[
            "convert",
            "-f",
            "qcow2",
            "-O",
            "raw",
            qcow2.to_str().unwrap(),
            out.to_str().unwrap(),
        ]);
        std::fs::read(out).unwrap()
    }

    #[test]
    fn a_raw_disk_holding_a_qcow2_header_is_converted_as_raw() {
        if !have_qemu_img() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let secret = d.path().join("secret");
        std::fs::write(&secret, "HOST-SECRET-0c7e".repeat(4096)).unwrap();
        let raw = hostile_raw(d.path(), &secret);
        let out = d.path().join("out.qcow2");
        convert_to_qcow2(&raw, Format::Raw, &out).unwrap();
        assert_eq!(backing_file(&out).unwrap(), None);
        let bytes = read_raw(&out, d.path());
        let want = std::fs::read(&raw).unwrap();
        // The virtual size is rounded up to whole sectors; the tail reads as zeros.
        assert!(
            bytes.len() >= want.len()
                && bytes[..want.len()] == want[..]
                && bytes[want.len()..].iter().all(|b| *b == 0),
            "the converted disk must hold the guest's bytes as they are"
        );
        let needle = b"HOST-SECRET-0c7e";
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the host file leaked into the disk"
        );
    }

    #[test]
    fn foreign_images_with_backing_or_data_files_are_refused() {
        if !have_qemu_img() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let secret = d.path().join("secret");
        std::fs::write(&secret, "x").unwrap();
        let raw = hostile_raw(d.path(), &secret);
        let e = inspect_foreign(&raw).unwrap_err().to_string();
        assert!(e.contains("backing file"), "{e}");

        let data = d.path().join("ext.qcow2");
        run(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            &format!("data_file={}", secret.display()),
            data.to_str().unwrap(),
            "1M",
        ]);
        let e = inspect_foreign(&data).unwrap_err().to_string();
        assert!(e.contains("data file"), "{e}");

        let vmdk = d.path().join("x.vmdk");
        run(&["create", "-q", "-f", "vmdk", vmdk.to_str().unwrap(), "1M"]);
        let e = inspect_foreign(&vmdk).unwrap_err().to_string();
        assert!(e.contains("vmdk"), "{e}");

        let e = inspect_foreign(Path::new("json:{}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute"), "{e}");

        let plain = d.path().join("plain.qcow2");
        run(&["create", "-q", "-f", "qcow2", plain.to_str().unwrap(), "1M"]);
        assert_eq!(inspect_foreign(&plain).unwrap(), Format::Qcow2);
        let r = d.path().join("plain.raw");
        std::fs::write(&r, vec![0u8; 65536]).unwrap();
        assert_eq!(inspect_foreign(&r).unwrap(), Format::Raw);
    }

    #[test]
    fn internal_snapshots_put_a_disk_back_under_bitmaps_and_a_grow() {
        if !have_qemu_img() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("v.qcow2");
        let raw = d.path().join("v.raw");
        std::fs::write(&raw, vec![0x11u8; 1 << 20]).unwrap();
        convert_to_qcow2(&raw, Format::Raw, &img).unwrap();
        run(&["bitmap", "--add", img.to_str().unwrap(), "cp1"]);
        snapshot_create(&img, "skiff-snap-1").unwrap();
        assert_eq!(snapshot_tags(&img).unwrap(), vec!["skiff-snap-1"]);
        let o = Command::new("qemu-io")
            .args(["-f", "qcow2", "-c", "write -P 0x22 0 64k"])
            .arg(&img)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        grow(&img, 1).unwrap();
        // Reverting under a bitmap is refused; without it the old bytes and size return.
        assert!(snapshot_apply(&img, "skiff-snap-1").is_err());
        remove_bitmaps(&img).unwrap();
        snapshot_apply(&img, "skiff-snap-1").unwrap();
        assert_eq!(virtual_size(&img, Format::Qcow2).unwrap(), 1 << 20);
        assert_eq!(read_raw(&img, d.path()), vec![0x11u8; 1 << 20]);
        let copy = d.path().join("copy.qcow2");
        convert_snapshot(&img, "skiff-snap-1", &copy).unwrap();
        assert_eq!(read_raw(&copy, d.path()), vec![0x11u8; 1 << 20]);
        snapshot_delete(&img, "skiff-snap-1").unwrap();
        assert!(snapshot_tags(&img).unwrap().is_empty());
        assert!(allocated_bytes(&img).unwrap() > 0);
    }

    #[test]
    fn overlays_name_their_base_and_grow() {
        if !have_qemu_img() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("base.qcow2");
        run(&["create", "-q", "-f", "qcow2", base.to_str().unwrap(), "64M"]);
        let top = d.path().join("top.qcow2");
        create_overlay(&base, &top, 1).unwrap();
        assert_eq!(backing_file(&top).unwrap(), Some(base.clone()));
        assert_eq!(backing_file(&base).unwrap(), None);
        grow(&top, 2).unwrap();
        assert_eq!(virtual_size(&top, Format::Qcow2).unwrap(), 2 << 30);
    }
}
