//! Configuration: defaults, then a TOML file, then `SKIFF_*` environment variables, then
//! command-line flags. Validated once at start; every error names the offending key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors of loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML.
    #[error("configuration file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A key has a value of the wrong type or an unknown name.
    #[error("configuration key `{key}`: {message}")]
    Key { key: String, message: String },
}

fn bad(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the datastore, images and backups live.
    pub data_dir: PathBuf,
    /// Plain-HTTP listener: loopback only unless `allow_public_http` (sessions and API
    /// keys would cross the network in clear); `[tls]` serves the network.
    pub listen: SocketAddr,
    /// Lets `listen` be a non-loopback address (behind a TLS-terminating proxy, say).
    pub allow_public_http: bool,
    pub tls: TlsConfig,
    /// `tracing` filter, e.g. `info` or `skiff=debug,actix_web=info`.
    pub log: String,
    /// Job worker threads (jobs run on the blocking pool).
    pub job_workers: usize,
    /// HTTP worker threads; 0 means one per core.
    pub http_workers: usize,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Seconds between reconciler passes.
    pub reconcile_interval_secs: u64,
    pub rate_limit: RateLimitConfig,
    pub catalog: CatalogConfig,
    pub compute: ComputeConfig,
    pub network: NetworkConfig,
    pub backup: BackupConfig,
    pub quotas: QuotaConfig,
    pub admission: AdmissionConfig,
    /// Bearer token for `/metrics` from anywhere; empty: only loopback may scrape.
    pub metrics_token: String,
    /// Reverse proxies in front of skiff: for requests from these addresses the last
    /// `X-Forwarded-For` entry is the client (dashboard sign-in throttling). Empty: the
    /// peer address is the client, so behind a proxy all clients share one address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// Per-account bounds on what one tenant may hold of the shared host (defaults;
/// `skiff admin set-quota` overrides them per account).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    pub vms: u64,
    pub vcpus: u64,
    pub memory_gib: u64,
    pub disk_gib: u64,
    /// Public IPv4 addresses (one per VM today).
    pub public_ips: u64,
    /// Images saved from VMs (`save-image`).
    pub saved_images: u64,
    pub security_groups: u64,
    pub rules_per_group: u64,
    pub groups_per_nic: u64,
    /// Backup points, and what they may add to the shared store.
    pub backups: u64,
    pub backup_gib: u64,
    /// Snapshots of VMs and volumes.
    pub snapshots: u64,
    /// VPCs (each is a bridge and a router namespace on the host).
    pub vpcs: u64,
}

impl QuotaConfig {
    /// The quota's value by its name (`skiff admin set-quota`, error messages).
    pub fn get(&self, name: &str) -> Option<u64> {
        Some(match name {
            "vms" => self.vms,
            "vcpus" => self.vcpus,
            "memory_gib" => self.memory_gib,
            "disk_gib" => self.disk_gib,
            "public_ips" => self.public_ips,
            "saved_images" => self.saved_images,
            "security_groups" => self.security_groups,
            "rules_per_group" => self.rules_per_group,
            "groups_per_nic" => self.groups_per_nic,
            "backups" => self.backups,
            "backup_gib" => self.backup_gib,
            "snapshots" => self.snapshots,
            "vpcs" => self.vpcs,
            _ => return None,
        })
    }
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            vms: 20,
            vcpus: 40,
            memory_gib: 80,
            disk_gib: 1000,
            public_ips: 20,
            saved_images: 10,
            security_groups: 50,
            rules_per_group: 100,
            groups_per_nic: 5,
            backups: 200,
            backup_gib: 1000,
            snapshots: 50,
            vpcs: 20,
        }
    }
}

/// What the host admits, all accounts together: guests' memory and disk against the
/// host's, times these ratios.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionConfig {
    pub memory_overcommit: f64,
    pub disk_overcommit: f64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            memory_overcommit: 1.0,
            disk_overcommit: 4.0,
        }
    }
}

/// HTTPS for the dashboard and the API. The package generates a self-signed
/// certificate at install; replace the two files with your own and restart.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// HTTPS listener, e.g. `0.0.0.0:8443`; empty means no HTTPS.
    pub listen: String,
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            listen: String::new(),
            cert: PathBuf::from("/etc/skiff/tls/cert.pem"),
            key: PathBuf::from("/etc/skiff/tls/key.pem"),
        }
    }
}

impl TlsConfig {
    /// The HTTPS address, when HTTPS is on.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.listen.trim().parse().ok()
    }
}

/// Where VM backups are kept and how often the scheduler looks for due schedules.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// The backup repository; empty means `<data_dir>/backups`. Put it on another disk
    /// so a lost data disk does not take its backups with it.
    pub dir: PathBuf,
    /// Unreferenced chunks younger than this survive garbage collection.
    pub gc_safety_secs: u64,
    /// Seconds between scheduler passes over the backup schedules.
    pub schedule_interval_secs: u64,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            dir: PathBuf::new(),
            gc_safety_secs: 3600,
            schedule_interval_secs: 30,
        }
    }
}

impl Config {
    /// The backup repository's directory.
    pub fn backup_dir(&self) -> PathBuf {
        if self.backup.dir.as_os_str().is_empty() {
            self.data_dir.join("backups")
        } else {
            self.backup.dir.clone()
        }
    }
}

/// Where and how guests run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeConfig {
    /// Off: the VM API answers 503; everything else works (development, CI of the API).
    pub enabled: bool,
    pub libvirt_uri: String,
    /// `auto` (KVM when it works, else TCG), `kvm` or `tcg`.
    pub accel: String,
    /// Serial-console substrings that mean the guest has booted (cloud-init's final
    /// line, a login prompt, the test template's marker). An answering guest agent
    /// counts too.
    pub ready_markers: Vec<String>,
    /// A guest that shows no marker and no guest agent by then is stopped and its
    /// boot fails with the console's tail.
    pub boot_timeout_secs: u64,
    /// How long a stop waits for the guest to power off before pulling the plug.
    pub stop_timeout_secs: u64,
    /// The group libvirt runs QEMU with (qemu.conf `group`): it may enter the
    /// directories on the way to its guests' files, nothing else of the data directory.
    pub qemu_group: String,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        ComputeConfig {
            enabled: true,
            libvirt_uri: "qemu:///system".into(),
            accel: "auto".into(),
            ready_markers: vec![
                "SKIFF-GUEST ready".into(),
                // cloud-init's final message ("Cloud-init v. X finished at … Datasource
                // DataSourceNoCloud …"); its earlier "running" lines come before the
                // keys and network are applied.
                "Datasource DataSource".into(),
                "login:".into(),
            ],
            boot_timeout_secs: 300,
            stop_timeout_secs: 60,
            qemu_group: "libvirt-qemu".into(),
        }
    }
}

/// Host networking.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Taps are named `<tap_prefix><nic id>`; two skiff instances on one host (tests)
    /// need different prefixes.
    pub tap_prefix: String,
    pub public: PublicNetworkConfig,
    pub firewall: FirewallConfig,
    pub vpc: VpcConfig,
}

/// Private networks (docs/decisions/0011-vpc-data-path.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VpcConfig {
    /// The guests' MTU inside a VPC: 1450 leaves room for VXLAN on a 1500-byte
    /// underlay, so VPCs can span hosts later without a change in the guests.
    pub mtu: u32,
    /// Outbound traffic of VPC-only VMs leaves through the host, masqueraded (turns
    /// on IPv4 forwarding on the host).
    pub snat: bool,
    /// The /31 links between the host and each VPC's router come from here; no VPC
    /// may use it (the default is link-local, which no VPC can).
    pub transit_cidr: String,
    /// Floating addresses: a prefix routed to this host (empty: none). Each is NATed
    /// 1:1 to a VPC NIC in its VPC's router.
    pub floating_cidr: String,
}

impl Default for VpcConfig {
    fn default() -> Self {
        VpcConfig {
            mtu: 1450,
            snat: false,
            transit_cidr: "169.254.0.0/16".into(),
            floating_cidr: String::new(),
        }
    }
}

/// The security-group data plane (eBPF on every VM tap; needs root and bpffs).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallConfig {
    /// Off: security groups can be edited but not attached, and nothing is filtered.
    pub enabled: bool,
    /// A bpffs directory for the pinned maps and links; they keep the rules in force
    /// while skiff restarts. Two skiff instances on one host need two directories.
    pub bpf_dir: PathBuf,
    /// Idle time after which a tracked connection is forgotten, per kind.
    pub conntrack_tcp_secs: u64,
    pub conntrack_udp_secs: u64,
    pub conntrack_icmp_secs: u64,
    pub conntrack_other_secs: u64,
    /// `auto` (TCX on Linux 6.6+, classic TC before), `tcx` or `tc`.
    pub attach: String,
}

impl Default for FirewallConfig {
    fn default() -> Self {
        let t = crate::network::firewall::Timeouts::default();
        FirewallConfig {
            enabled: true,
            bpf_dir: PathBuf::from("/sys/fs/bpf/skiff"),
            conntrack_tcp_secs: t.tcp_secs,
            conntrack_udp_secs: t.udp_secs,
            conntrack_icmp_secs: t.icmp_secs,
            conntrack_other_secs: t.other_secs,
            attach: "auto".into(),
        }
    }
}

impl FirewallConfig {
    pub fn timeouts(&self) -> crate::network::firewall::Timeouts {
        crate::network::firewall::Timeouts {
            tcp_secs: self.conntrack_tcp_secs,
            udp_secs: self.conntrack_udp_secs,
            icmp_secs: self.conntrack_icmp_secs,
            other_secs: self.conntrack_other_secs,
        }
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            tap_prefix: "skv".into(),
            public: PublicNetworkConfig::default(),
            firewall: FirewallConfig::default(),
            vpc: VpcConfig::default(),
        }
    }
}

/// The public pool: one Linux bridge (skiff creates it if missing; bridge it to the LAN
/// yourself to make it really public) and the addresses it hands out.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublicNetworkConfig {
    pub bridge: String,
    /// The pool, e.g. `203.0.113.0/24`.
    pub cidr: String,
    /// The guests' default gateway; never handed out. Empty: the pool's first address.
    pub gateway: String,
    pub nameservers: Vec<String>,
    /// A /64 routed to this host (`2001:db8:1::/64`); empty: no IPv6. The host takes
    /// `::1` on the bridge (the guests' IPv6 gateway); each public NIC gets
    /// `::1:<its NIC id>` (hexadecimal: NIC 26 is `::1:1a`).
    pub ipv6_prefix: String,
}

impl Default for PublicNetworkConfig {
    fn default() -> Self {
        PublicNetworkConfig {
            bridge: "skbr0".into(),
            cidr: "10.231.0.0/24".into(),
            gateway: String::new(),
            nameservers: Vec::new(),
            ipv6_prefix: String::new(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("skiff-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            allow_public_http: false,
            tls: TlsConfig::default(),
            log: "info".into(),
            job_workers: 4,
            http_workers: 0,
            max_body_bytes: 256 * 1024,
            reconcile_interval_secs: 60,
            rate_limit: RateLimitConfig::default(),
            catalog: CatalogConfig::default(),
            compute: ComputeConfig::default(),
            network: NetworkConfig::default(),
            backup: BackupConfig::default(),
            quotas: QuotaConfig::default(),
            admission: AdmissionConfig::default(),
            metrics_token: String::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Off means no key is ever limited (benchmarks, trusted single-user boxes).
    pub enabled: bool,
    pub standard: TierLimits,
    pub high: TierLimits,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            standard: TierLimits {
                per_second: 30,
                burst: 60,
            },
            high: TierLimits {
                per_second: 100,
                burst: 200,
            },
        }
    }
}

/// A steady rate plus a burst budget: a token bucket of `burst` tokens refilled at
/// `per_second`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TierLimits {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    pub regions: Vec<RegionConfig>,
    pub templates: Vec<TemplateConfig>,
    pub vm_plans: Vec<VmPlanConfig>,
    pub volume_pricing: StoragePriceConfig,
    pub snapshot_pricing: StoragePriceConfig,
    pub backup_pricing: StoragePriceConfig,
    pub ipv4_pricing: IpPriceConfig,
    pub ipv6_pricing: IpPriceConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub country_code: String,
    #[serde(default)]
    pub flag: Option<String>,
    #[serde(default)]
    pub display_order: Option<i64>,
    #[serde(default)]
    pub is_default: bool,
}

/// A catalog template. Images imported with `skiff template import` are listed as well.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    pub id: uuid::Uuid,
    pub name: String,
    pub version: String,
    pub cpu: i64,
    pub ram: i64,
    pub storage: i64,
    #[serde(default)]
    pub is_windows: bool,
    #[serde(default = "linux")]
    pub os_type: String,
    #[serde(default = "os")]
    pub category: String,
    #[serde(default)]
    pub description: String,
    pub region: String,
    /// The bootable qcow2 base image; VM disks are thin overlays on it.
    #[serde(default)]
    pub image: Option<PathBuf>,
}

fn linux() -> String {
    "linux".into()
}
fn os() -> String {
    "os".into()
}

/// A VM size. Its id is the contract's `pricing_id`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmPlanConfig {
    pub id: i64,
    pub vcpu: i64,
    pub memory_gib: i64,
    pub ssd_gib: i64,
    #[serde(default)]
    pub transfer_gib: i64,
    #[serde(default)]
    pub price_per_hour: f64,
    #[serde(default)]
    pub monthly_price: f64,
    #[serde(default)]
    pub yearly_price: f64,
    #[serde(default)]
    pub twenty_four_month_price: f64,
    #[serde(default = "standard")]
    pub vm_type: String,
    pub region: String,
}

fn standard() -> String {
    "standard".into()
}

#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StoragePriceConfig {
    pub id: Option<i64>,
    pub price_per_gb_hour: f64,
    pub price_per_gb_month: f64,
    pub yearly_price_per_gb: f64,
    pub twenty_four_month_price_per_gb: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct IpPriceConfig {
    pub price_per_hour: f64,
    pub monthly_price: f64,
    pub yearly_price: f64,
    pub twenty_four_month_price: f64,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        let region = "us-east".to_string();
        let plan = |id, vcpu, memory_gib, ssd_gib, vm_type: &str| VmPlanConfig {
            id,
            vcpu,
            memory_gib,
            ssd_gib,
            transfer_gib: 0,
            price_per_hour: 0.0,
            monthly_price: 0.0,
            yearly_price: 0.0,
            twenty_four_month_price: 0.0,
            vm_type: vm_type.into(),
            region: region.clone(),
        };
        CatalogConfig {
            regions: vec![RegionConfig {
                id: 1,
                code: region.clone(),
                name: "Local".into(),
                country_code: "US".into(),
                flag: None,
                display_order: Some(1),
                is_default: true,
            }],
            templates: Vec::new(),
            vm_plans: vec![
                plan(1, 1, 1, 10, "standard"),
                plan(2, 1, 2, 25, "standard"),
                plan(3, 2, 4, 50, "standard"),
                plan(4, 4, 8, 100, "standard"),
                plan(5, 2, 8, 80, "premium"),
                plan(6, 4, 16, 160, "premium"),
            ],
            volume_pricing: StoragePriceConfig {
                id: Some(1),
                ..Default::default()
            },
            snapshot_pricing: StoragePriceConfig::default(),
            backup_pricing: StoragePriceConfig::default(),
            ipv4_pricing: IpPriceConfig::default(),
            ipv6_pricing: IpPriceConfig::default(),
        }
    }
}

/// Overrides given on the command line (flags, or their `SKIFF_*` variables through clap).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
}

/// Environment variables that name a command-line input rather than a configuration key.
/// Other `SKIFF_*` variables whose first part names no configuration section are
/// ignored with a notice; inside a section, an unknown key is an error.
const NOT_KEYS: &[&str] = &["SKIFF_CONFIG"];

impl Config {
    /// Loads defaults ← file ← environment ← overrides, then validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        // Start from the defaults so that a file or variable may set one field of a
        // nested table (say `rate_limit.standard.burst`) and keep the others.
        let mut table = match toml::Value::try_from(Config::default()) {
            Ok(toml::Value::Table(t)) => t,
            _ => toml::Table::new(),
        };
        let from_file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.into(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Syntax {
                        path: path.into(),
                        message: e.message().to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        merge(&mut table, from_file);
        let mut env: Vec<_> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("SKIFF_") && !NOT_KEYS.contains(&k.as_str()))
            .collect();
        env.sort();
        let top_level: Vec<String> = table.keys().cloned().collect();
        for (var, raw) in env {
            let path: Vec<String> = var["SKIFF_".len()..]
                .split("__")
                .map(|p| p.to_ascii_lowercase())
                .collect();
            // Variables that name no configuration section belong to something else
            // (scripts, tests); say so rather than refuse to start.
            if !top_level.contains(&path[0]) {
                eprintln!("skiff: ignoring {var}: not a configuration key");
                continue;
            }
            set_path(&mut table, &path, env_value(&raw), &var)?;
        }
        if let Some(d) = &overrides.data_dir {
            table.insert(
                "data_dir".into(),
                toml::Value::String(d.to_string_lossy().into_owned()),
            );
        }
        if let Some(l) = &overrides.listen {
            table.insert("listen".into(), toml::Value::String(l.clone()));
        }
        let cfg: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                bad(&key, e.into_inner().to_string())
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(bad("data_dir", "must not be empty"));
        }
        if self.job_workers == 0 || self.job_workers > 64 {
            return Err(bad("job_workers", "must be between 1 and 64"));
        }
        if self.max_body_bytes < 1024 {
            return Err(bad("max_body_bytes", "must be at least 1024"));
        }
        if !self.allow_public_http && !self.listen.ip().is_loopback() {
            return Err(bad(
                "listen",
                format!(
                    "{} is not a loopback address: plain HTTP would carry sessions and API \
                     keys in clear. Serve the network with [tls] listen, or set \
                     allow_public_http = true behind a TLS proxy",
                    self.listen
                ),
            ));
        }
        if !self.tls.listen.trim().is_empty() {
            if self.tls.addr().is_none() {
                return Err(bad("tls.listen", "must be an address such as 0.0.0.0:8443"));
            }
            if self.tls.cert.as_os_str().is_empty() || self.tls.key.as_os_str().is_empty() {
                return Err(bad("tls", "cert and key must name PEM files"));
            }
        }
        if self.reconcile_interval_secs == 0 {
            return Err(bad("reconcile_interval_secs", "must be at least 1"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log).map_err(|e| bad("log", e.to_string()))?;
        for (name, t) in [
            ("rate_limit.standard", self.rate_limit.standard),
            ("rate_limit.high", self.rate_limit.high),
        ] {
            if t.per_second == 0 {
                return Err(bad(&format!("{name}.per_second"), "must be at least 1"));
            }
            if t.burst < t.per_second {
                return Err(bad(&format!("{name}.burst"), "must be at least per_second"));
            }
        }
        if crate::network::firewall::AttachMode::parse(&self.network.firewall.attach).is_none() {
            return Err(bad("network.firewall.attach", "must be auto, tcx or tc"));
        }
        if !["auto", "kvm", "tcg"].contains(&self.compute.accel.as_str()) {
            return Err(bad("compute.accel", "must be auto, kvm or tcg"));
        }
        let p = &self.network.public;
        let net = crate::network::Cidr::parse(&p.cidr)
            .map_err(|e| bad("network.public.cidr", e.to_string()))?;
        if !p.gateway.is_empty() {
            let gw: std::net::Ipv4Addr = p
                .gateway
                .parse()
                .map_err(|_| bad("network.public.gateway", "must be an IPv4 address"))?;
            if !net.contains(gw) {
                return Err(bad(
                    "network.public.gateway",
                    "must lie inside network.public.cidr",
                ));
            }
        }
        let tp = &self.network.tap_prefix;
        if tp.is_empty() || tp.len() > 6 || !tp.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad(
                "network.tap_prefix",
                "must be 1 to 6 letters or digits",
            ));
        }
        if !(576..=9000).contains(&self.network.vpc.mtu) {
            return Err(bad("network.vpc.mtu", "must be 576 to 9000"));
        }
        if !self.network.vpc.floating_cidr.is_empty()
            && crate::network::Cidr::parse(&self.network.vpc.floating_cidr).is_err()
        {
            return Err(bad(
                "network.vpc.floating_cidr",
                "must be empty or a.b.c.d/len with len 8 to 30",
            ));
        }
        if crate::network::Cidr::parse(&self.network.vpc.transit_cidr).is_err() {
            return Err(bad(
                "network.vpc.transit_cidr",
                "must be a.b.c.d/len with len 8 to 30",
            ));
        }
        if !p.ipv6_prefix.is_empty() && crate::network::Prefix64::parse(&p.ipv6_prefix).is_none() {
            return Err(bad(
                "network.public.ipv6_prefix",
                "must be empty or an IPv6 /64 such as 2001:db8:1::/64",
            ));
        }
        if p.bridge.is_empty() || p.bridge.len() > 15 {
            return Err(bad("network.public.bridge", "must be 1 to 15 characters"));
        }
        let c = &self.catalog;
        if c.regions.is_empty() {
            return Err(bad("catalog.regions", "at least one region is needed"));
        }
        if c.regions.iter().filter(|r| r.is_default).count() != 1 {
            return Err(bad(
                "catalog.regions",
                "exactly one region must have is_default = true",
            ));
        }
        let codes: Vec<&str> = c.regions.iter().map(|r| r.code.as_str()).collect();
        unique("catalog.regions", "code", codes.iter().copied())?;
        unique(
            "catalog.regions",
            "id",
            c.regions.iter().map(|r| r.id.to_string()),
        )?;
        unique(
            "catalog.vm_plans",
            "id",
            c.vm_plans.iter().map(|p| p.id.to_string()),
        )?;
        unique(
            "catalog.templates",
            "id",
            c.templates.iter().map(|t| t.id.to_string()),
        )?;
        for (i, p) in c.vm_plans.iter().enumerate() {
            let key = format!("catalog.vm_plans[{i}]");
            if !codes.contains(&p.region.as_str()) {
                return Err(bad(
                    &format!("{key}.region"),
                    format!("unknown region {:?}", p.region),
                ));
            }
            if !["standard", "premium"].contains(&p.vm_type.as_str()) {
                return Err(bad(
                    &format!("{key}.vm_type"),
                    "must be standard or premium",
                ));
            }
            if p.vcpu < 1 || p.memory_gib < 1 || p.ssd_gib < 1 {
                return Err(bad(&key, "vcpu, memory_gib and ssd_gib must be at least 1"));
            }
        }
        for (i, t) in c.templates.iter().enumerate() {
            let key = format!("catalog.templates[{i}]");
            if !codes.contains(&t.region.as_str()) {
                return Err(bad(
                    &format!("{key}.region"),
                    format!("unknown region {:?}", t.region),
                ));
            }
            if !["os", "marketplace"].contains(&t.category.as_str()) {
                return Err(bad(&format!("{key}.category"), "must be os or marketplace"));
            }
        }
        Ok(())
    }

    /// The default region's code.
    pub fn default_region(&self) -> &str {
        self.catalog
            .regions
            .iter()
            .find(|r| r.is_default)
            .map(|r| r.code.as_str())
            .unwrap_or("us-east")
    }
}

fn unique<S: AsRef<str>>(
    list: &str,
    field: &str,
    values: impl Iterator<Item = S>,
) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for v in values {
        if !seen.insert(v.as_ref().to_string()) {
            return Err(bad(
                &format!("{list}.{field}"),
                format!("{:?} appears twice", v.as_ref()),
            ));
        }
    }
    Ok(())
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
/// Lists (such as `catalog.vm_plans`) replace as a whole.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// An environment value is TOML when it parses as a TOML value, else a plain string.
fn env_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

fn set_path(
    table: &mut toml::Table,
    path: &[String],
    value: toml::Value,
    var: &str,
) -> Result<(), ConfigError> {
    let (last, parents) = path.split_last().ok_or_else(|| bad(var, "empty key"))?;
    let mut cur = table;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| {
            bad(
                &path.join("."),
                format!("{var} sets a key inside a non-table"),
            )
        })?;
    }
    cur.insert(last.clone(), value);
    Ok(())
}

/// Pretty TOML of a configuration, for `skiff config show`.
pub fn to_toml(cfg: &Config) -> String {
    toml::to_string_pretty(cfg).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid_and_listen_on_loopback() {
        let c = Config::load(None, vec![], &Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.rate_limit.standard.per_second, 30);
        assert_eq!(c.default_region(), "us-east");
    }

    #[test]
    fn precedence_is_file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("skiff.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:1000\"\ndata_dir = \"/a\"\n[rate_limit.standard]\nper_second = 5\nburst = 5\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&f),
            env(&[
                ("SKIFF_DATA_DIR", "/b"),
                ("SKIFF_RATE_LIMIT__STANDARD__BURST", "9"),
                ("SKIFF_CONFIG", "ignored"),
                ("SKIFF_SOMETHING_ELSE", "ignored too"),
                ("HOME", "/root"),
            ]),
            &Overrides {
                listen: Some("127.0.0.1:3000".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen.port(), 3000);
        assert_eq!(c.data_dir, PathBuf::from("/b"));
        assert_eq!(
            c.rate_limit.standard,
            TierLimits {
                per_second: 5,
                burst: 9
            }
        );
    }

    #[test]
    fn errors_name_the_bad_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("skiff.toml");
        std::fs::write(&f, "[rate_limit.high]\nper_second = \"fast\"\nburst = 1\n").unwrap();
        let e = Config::load(Some(&f), vec![], &Overrides::default()).unwrap_err();
        assert!(
            e.to_string().contains("`rate_limit.high.per_second`"),
            "{e}"
        );

        std::fs::write(&f, "lisen = \"x\"\n").unwrap();
        let e = Config::load(Some(&f), vec![], &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");

        let e = Config::load(
            None,
            env(&[("SKIFF_LISTEN", "nowhere")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`listen`"), "{e}");

        let e = Config::load(
            None,
            env(&[("SKIFF_JOB_WORKERS", "0")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`job_workers`"), "{e}");

        let e = Config::load(
            None,
            env(&[("SKIFF_RATE_LIMIT__STANDARD__BURST", "1")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("rate_limit.standard.burst"), "{e}");

        let e = Config::load(
            None,
            env(&[("SKIFF_RATE_LIMIT__BOGUS", "1")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");

        std::fs::write(&f, "listen = [").unwrap();
        let e = Config::load(Some(&f), vec![], &Overrides::default()).unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
    }
}
