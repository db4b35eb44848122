//! NoCloud seeds: the `meta-data`, `user-data` and `network-config` that cloud-init (or
//! any NoCloud reader) finds on a small FAT disk labelled `CIDATA`, so real cloud
//! images work unchanged. Written in Rust (fatfs): no mkfs or mtools on the host.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use super::ComputeError;

/// One NIC as the guest should configure it.
#[derive(Clone, Debug, PartialEq)]
pub struct GuestNic {
    pub mac: String,
    /// CIDR notation, e.g. `203.0.113.10/24`.
    pub addresses: Vec<String>,
    pub gateway: Option<String>,
    /// The IPv6 default gateway (a public NIC with an IPv6 address).
    pub gateway6: Option<String>,
    /// The link MTU (a VPC's); `None` leaves the driver's.
    pub mtu: Option<u32>,
}

/// What the guest learns at boot.
#[derive(Clone, Debug, PartialEq)]
pub struct GuestConfig {
    /// A new id makes cloud-init apply per-instance settings (password, keys) again.
    pub instance_id: String,
    pub hostname: String,
    pub ssh_keys: Vec<String>,
    /// A crypt(3) hash (`$6$…`), never a plain password.
    pub password_hash: Option<String>,
    pub nics: Vec<GuestNic>,
    pub nameservers: Vec<String>,
}

/// A YAML scalar: JSON strings are valid YAML, and quoting keeps `#`, `: ` and the like
/// from changing the document's meaning.
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

pub fn meta_data(c: &GuestConfig) -> String {
    format!(
        "instance-id: {}\nlocal-hostname: {}\n",
        q(&c.instance_id),
        q(&c.hostname)
    )
}

pub fn user_data(c: &GuestConfig) -> String {
    let keys: Vec<String> = c.ssh_keys.iter().map(|k| q(k)).collect();
    let mut u = format!(
        "#cloud-config\nhostname: {}\npreserve_hostname: false\ndisable_root: false\n",
        q(&c.hostname)
    );
    if !keys.is_empty() {
        u.push_str("ssh_authorized_keys:\n");
        keys.iter().for_each(|k| u.push_str(&format!("  - {k}\n")));
    }
    u.push_str("users:\n  - name: root\n    lock_passwd: false\n");
    if !keys.is_empty() {
        u.push_str("    ssh_authorized_keys:\n");
        keys.iter()
            .for_each(|k| u.push_str(&format!("      - {k}\n")));
    }
    if let Some(h) = &c.password_hash {
        // `hashed_passwd`, not `passwd`: cloud-init (22.4 checked) hands `passwd` to
        // useradd only, so for root, which always exists, it would be dropped silently.
        u.push_str(&format!("    hashed_passwd: {}\nssh_pwauth: true\n", q(h)));
    }
    u
}

pub fn network_config(c: &GuestConfig) -> String {
    let mut n = String::from("version: 2\nethernets:\n");
    for (i, nic) in c.nics.iter().enumerate() {
        n.push_str(&format!(
            "  eth{i}:\n    match:\n      macaddress: {}\n    set-name: eth{i}\n",
            q(&nic.mac)
        ));
        if nic.addresses.is_empty() {
            n.push_str("    dhcp4: false\n");
            continue;
        }
        n.push_str("    addresses:\n");
        for a in &nic.addresses {
            n.push_str(&format!("      - {}\n", q(a)));
        }
        if let Some(gw) = &nic.gateway {
            n.push_str(&format!("    gateway4: {}\n", q(gw)));
        }
        if let Some(gw) = &nic.gateway6 {
            n.push_str(&format!("    gateway6: {}\n", q(gw)));
        }
        if let Some(mtu) = nic.mtu {
            n.push_str(&format!("    mtu: {mtu}\n"));
        }
        if !c.nameservers.is_empty() {
            let list: Vec<String> = c.nameservers.iter().map(|s| q(s)).collect();
            n.push_str(&format!(
                "    nameservers:\n      addresses: [{}]\n",
                list.join(", ")
            ));
        }
    }
    n
}

const SEED_BYTES: u64 = 1024 * 1024;

/// Writes a seed image at `path` (replacing it), atomically: temp file, then rename.
pub fn write_seed(path: &Path, c: &GuestConfig) -> Result<(), ComputeError> {
    let err = |reason: String| ComputeError::Host {
        what: format!("writing seed {}", path.display()),
        reason,
    };
    let tmp = path.with_extension("tmp");
    {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&tmp)
            .map_err(|e| err(e.to_string()))?;
        file.set_len(SEED_BYTES).map_err(|e| err(e.to_string()))?;
        fatfs::format_volume(
            &mut file,
            fatfs::FormatVolumeOptions::new().volume_label(*b"CIDATA     "),
        )
        .map_err(|e| err(e.to_string()))?;
        let fs = fatfs::FileSystem::new(&mut file, fatfs::FsOptions::new())
            .map_err(|e| err(e.to_string()))?;
        {
            let root = fs.root_dir();
            for (name, body) in [
                ("meta-data", meta_data(c)),
                ("user-data", user_data(c)),
                ("network-config", network_config(c)),
            ] {
                let mut f = root.create_file(name).map_err(|e| err(e.to_string()))?;
                f.truncate().map_err(|e| err(e.to_string()))?;
                f.write_all(body.as_bytes())
                    .map_err(|e| err(e.to_string()))?;
                f.flush().map_err(|e| err(e.to_string()))?;
            }
        }
        fs.unmount().map_err(|e| err(e.to_string()))?;
        file.sync_all().map_err(|e| err(e.to_string()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn cfg() -> GuestConfig {
        GuestConfig {
            instance_id: "i-1".into(),
            hostname: "web-1".into(),
            ssh_keys: vec!["ssh-ed25519 AAAAC3Nza user@host # not a comment".into()],
            password_hash: Some("$6$salt$hash".into()),
            nics: vec![GuestNic {
                mac: "52:54:00:00:00:01".into(),
                addresses: vec!["203.0.113.10/24".into()],
                gateway: Some("203.0.113.1".into()),
                gateway6: None,
                mtu: None,
            }],
            nameservers: vec!["192.0.2.53".into()],
        }
    }

    #[test]
    fn documents_quote_every_value() {
        let c = cfg();
        assert_eq!(
            meta_data(&c),
            "instance-id: \"i-1\"\nlocal-hostname: \"web-1\"\n"
        );
        let u = user_data(&c);
        assert!(u.starts_with("#cloud-config\n"));
        assert!(u.contains(
            "ssh_authorized_keys:\n  - \"ssh-ed25519 AAAAC3Nza user@host # not a comment\"\n"
        ));
        assert!(u.contains("    hashed_passwd: \"$6$salt$hash\"\n"));
        assert!(u.contains("    ssh_authorized_keys:\n      - \"ssh-ed25519"));
        let n = network_config(&c);
        assert!(n.contains("macaddress: \"52:54:00:00:00:01\""));
        assert!(n.contains("      - \"203.0.113.10/24\"\n"));
        assert!(n.contains("gateway4: \"203.0.113.1\""));
        assert!(!n.contains("mtu"));
        // A VPC NIC beside it: its own address and MTU, no second default route.
        let mut c = cfg();
        c.nics.push(GuestNic {
            mac: "52:54:00:00:00:02".into(),
            addresses: vec!["10.0.1.2/24".into()],
            gateway: None,
            gateway6: None,
            mtu: Some(1450),
        });
        let n = network_config(&c);
        let eth1 = n.split("  eth1:").nth(1).unwrap();
        assert!(
            eth1.contains("      - \"10.0.1.2/24\"\n    mtu: 1450\n"),
            "{n}"
        );
        assert_eq!(n.matches("gateway4").count(), 1, "{n}");
    }

    #[test]
    fn the_seed_is_a_fat_disk_labelled_cidata_with_the_three_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seed.img");
        write_seed(&p, &cfg()).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), SEED_BYTES);
        let mut f = std::fs::File::open(&p).unwrap();
        let fs = fatfs::FileSystem::new(&mut f, fatfs::FsOptions::new()).unwrap();
        assert_eq!(fs.volume_label().trim_end(), "CIDATA");
        for (name, want) in [
            ("meta-data", meta_data(&cfg())),
            ("user-data", user_data(&cfg())),
            ("network-config", network_config(&cfg())),
        ] {
            let mut s = String::new();
            fs.root_dir()
                .open_file(name)
                .unwrap()
                .read_to_string(&mut s)
                .unwrap();
            assert_eq!(s, want);
        }
        // Rewriting replaces the content.
        let mut c = cfg();
        c.hostname = "web-2".into();
        drop(fs);
        write_seed(&p, &c).unwrap();
        let mut f = std::fs::File::open(&p).unwrap();
        let fs = fatfs::FileSystem::new(&mut f, fatfs::FsOptions::new()).unwrap();
        let mut s = String::new();
        fs.root_dir()
            .open_file("meta-data")
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert!(s.contains("web-2"));
    }
}
