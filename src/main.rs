//! The `skiff` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use skiff::config::{Config, Overrides};
use skiff::model::RateLimitTier;
use skiff::service::InitReport;

#[derive(Parser)]
#[command(name = "skiff", version, about = "A self-hosted cloud in one binary")]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "SKIFF_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (datastore, images, backups).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long, global = true)]
    listen: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance (initialises an empty data directory first).
    Serve,
    /// Check this host (libvirt, KVM, bridge, bpffs, kernel, disk, clock, TLS) and say
    /// what to fix; exits non-zero when something would stop skiff from working.
    Doctor,
    /// Create the admin account, default project and first API key.
    Init {
        /// Print {"api_key", "project_id"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Operator tools; they need the data directory to themselves (stop `serve` first).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Catalog templates (offline: stop `serve` first; it reads the catalog at start).
    Template {
        #[command(subcommand)]
        command: TemplateCommand,
    },
    /// The backup engine on plain disk-image files (no running skiff needed).
    Repo {
        #[command(subcommand)]
        command: RepoCommand,
    },
    /// VM backups in this appliance's repository (works while `serve` runs).
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// Print the effective configuration.
    Config,
    /// Print the OpenAPI document this build serves.
    Openapi,
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Re-hash every chunk of one backup (or all); exits non-zero naming the damaged
    /// ones. Read-only: the API's verify job also moves damaged chunks aside.
    Verify {
        /// Backup id (as the API shows it); every backup when omitted.
        id: Option<uuid::Uuid>,
    },
}

#[derive(Subcommand)]
enum TemplateCommand {
    /// Import a bootable disk image (raw, or a qcow2 with no backing or data file) as a template.
    Import {
        file: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "1")]
        version: String,
        #[arg(long, default_value = "")]
        description: String,
        /// `linux` or `windows`.
        #[arg(long, default_value = "linux")]
        os_type: String,
        #[arg(long)]
        region: Option<String>,
        /// Minimum vCPUs and RAM (GB) of a plan for this image.
        #[arg(long, default_value_t = 1)]
        cpu: i64,
        #[arg(long, default_value_t = 1)]
        ram: i64,
        #[arg(long)]
        json: bool,
    },
    /// List the catalog's templates.
    List,
}

#[derive(Subcommand)]
enum RepoCommand {
    /// Back up an image as the next point of a series; prints the point's id last.
    Backup {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        image: PathBuf,
        #[arg(long, default_value = "default")]
        series: String,
        /// Bytes per chunk for a new series (power of two, 4 KiB–16 MiB; default 64 KiB).
        #[arg(long)]
        chunk_size: Option<u32>,
        /// Read only the extents this `qemu-img map --output=json` (of an incremental
        /// QEMU backup image) marks as changed; the rest comes from the previous point.
        #[arg(long)]
        changed_map: Option<PathBuf>,
    },
    /// List the restore points.
    List {
        #[arg(long)]
        repo: PathBuf,
    },
    /// Write a point's image to a file.
    Restore {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        point: uuid::Uuid,
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-hash every chunk (of one point, or all); exits non-zero when anything is damaged.
    Verify {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        point: Option<uuid::Uuid>,
    },
    /// Delete a point (its chunks go at the next gc).
    Delete {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        point: uuid::Uuid,
    },
    /// Remove chunks no point uses, once older than the safety window.
    Gc {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long, default_value_t = 3600)]
        safety_secs: u64,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create another account (a tenant) with its own project and owner key.
    CreateAccount {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Set an API key's rate-limit tier: standard, high or unlimited.
    SetTier { key_id: uuid::Uuid, tier: String },
    /// Set a user's dashboard password (10+ characters), read from standard input.
    SetPassword { user: String },
    /// Set one quota of an account (name or id): vms, vcpus, memory_gib, disk_gib,
    /// public_ips, saved_images, security_groups, rules_per_group, groups_per_nic,
    /// backups, backup_gib; `default` returns it to the configuration's value.
    SetQuota {
        account: String,
        quota: String,
        value: String,
    },
    /// Make an account (name or id) the host operator's, or with --revoke a tenant's
    /// again: host capacity, diagnostics and repository-wide jobs are operators' only.
    SetOperator {
        account: String,
        #[arg(long)]
        revoke: bool,
    },
}

fn print_report(r: &InitReport, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "api_key": r.api_key,
                "project_id": r.project_id,
                "account_id": r.account_id,
                "api_key_id": r.api_key_id,
                "user": r.user_name,
                "password": r.password,
            })
        );
    } else {
        println!("account:     {}", r.account_id);
        println!("project:     {} (default)", r.project_id);
        println!("admin key:   {}", r.api_key);
        println!("             shown once; skiff keeps only its hash");
        println!("dashboard:   user {} password {}", r.user_name, r.password);
        println!("             shown once; change it with `skiff admin set-password`");
    }
}

/// Verifies a repository (or one point of it) and fails when anything is damaged.
fn verify(repo: &std::path::Path, point: Option<&uuid::Uuid>) -> anyhow::Result<()> {
    let r = skiff::backup::Repo::open(repo)?.verify(point)?;
    for id in &r.damaged_points {
        println!("damaged point {id}");
    }
    for c in &r.damaged_chunks {
        println!("damaged chunk {c}");
    }
    eprintln!(
        "{} points, {} chunks checked",
        r.checked_points, r.checked_chunks
    );
    if point.is_some() && r.checked_points == 0 {
        anyhow::bail!(
            "no backup {} in {}",
            point.map(|p| p.to_string()).unwrap_or_default(),
            repo.display()
        );
    }
    if !r.damaged_points.is_empty() {
        anyhow::bail!("{} damaged points", r.damaged_points.len());
    }
    Ok(())
}

fn repo_command(command: RepoCommand) -> anyhow::Result<()> {
    use skiff::backup::Repo;
    match command {
        RepoCommand::Backup {
            repo,
            image,
            series,
            chunk_size,
            changed_map,
        } => {
            let started = std::time::Instant::now();
            let r = Repo::open(&repo)?;
            let s = match changed_map {
                Some(map) => {
                    let json = std::fs::read_to_string(&map)
                        .with_context(|| format!("reading {}", map.display()))?;
                    let changed = skiff::backup::changed_from_qemu_map(&json)?;
                    r.backup_changed(&image, &series, &changed)?
                }
                None => r.backup(&image, &series, chunk_size)?,
            };
            eprintln!(
                "series {} point {}: {} chunks ({} new, {} zero), read {} B, stored {} B, {:.2} s",
                s.point.series,
                s.point.increment,
                s.chunks,
                s.new_chunks,
                s.zero_chunks,
                s.point.read_bytes,
                s.point.stored_bytes,
                started.elapsed().as_secs_f64()
            );
            println!("{}", s.point.id);
        }
        RepoCommand::List { repo } => {
            for p in Repo::open(&repo)?.points()? {
                println!(
                    "{}  {} #{}  {}  {} B image, {} B stored",
                    p.id, p.series, p.increment, p.created_at, p.image_size, p.stored_bytes
                );
            }
        }
        RepoCommand::Restore { repo, point, out } => {
            let p = Repo::open(&repo)?.restore(&point, &out)?;
            eprintln!(
                "restored {} #{} to {}",
                p.series,
                p.increment,
                out.display()
            );
        }
        RepoCommand::Verify { repo, point } => verify(&repo, point.as_ref())?,
        RepoCommand::Delete { repo, point } => {
            Repo::open(&repo)?.delete(&point)?;
        }
        RepoCommand::Gc { repo, safety_secs } => {
            let (n, bytes) = Repo::open(&repo)?.gc(std::time::Duration::from_secs(safety_secs))?;
            println!("removed {n} chunks, {bytes} B");
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // Before anything is written: the store, disks, seeds and backups are skiff's alone.
    skiff::compute::access::private_umask();
    let cli = Cli::parse();
    let cfg = Config::load(
        cli.config.as_deref(),
        std::env::vars(),
        &Overrides {
            data_dir: cli.data_dir.clone(),
            listen: cli.listen.clone(),
        },
    )?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cfg.log))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Serve => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("tokio runtime")?;
            let local = tokio::task::LocalSet::new();
            rt.block_on(local.run_until(skiff::app::serve(cfg, |r| {
                println!("first start: initialised the data directory");
                print_report(r, false);
            })))?;
        }
        Command::Doctor => {
            if !skiff::doctor::report(&skiff::doctor::run(&cfg)) {
                std::process::exit(1);
            }
        }
        Command::Init { json } => {
            let services = skiff::app::open(&cfg)?;
            let r = services.init("admin")?;
            print_report(&r, json);
        }
        Command::Admin { command } => {
            let services = skiff::app::open(&cfg)?;
            match command {
                AdminCommand::CreateAccount { name, json } => {
                    print_report(&services.create_account(&name)?, json)
                }
                AdminCommand::SetTier { key_id, tier } => {
                    let t = RateLimitTier::parse(&tier)
                        .context("tier must be standard, high or unlimited")?;
                    let k = services.set_key_tier(&key_id, t)?;
                    println!("{} ({}) is now {}", k.id, k.key_prefix, t.as_str());
                }
                AdminCommand::SetQuota {
                    account,
                    quota,
                    value,
                } => {
                    let v = match value.as_str() {
                        "default" => None,
                        v => Some(
                            v.parse::<u64>()
                                .context("the value must be a number or default")?,
                        ),
                    };
                    services.set_quota(&account, &quota, v)?;
                    println!("{quota} of {account}: {value}");
                }
                AdminCommand::SetOperator { account, revoke } => {
                    let a = services.set_operator(&account, !revoke)?;
                    println!(
                        "{} ({}) is {}",
                        a.name,
                        a.id,
                        if a.operator {
                            "an operator"
                        } else {
                            "a tenant"
                        }
                    );
                }
                AdminCommand::SetPassword { user } => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("read the password from standard input")?;
                    let u =
                        services.set_user_password(&user, line.trim_end_matches(['\r', '\n']))?;
                    println!("password of {} set", u.name);
                }
            }
        }
        Command::Template { command } => {
            let services = skiff::app::open(&cfg)?;
            match command {
                TemplateCommand::Import {
                    file,
                    name,
                    version,
                    description,
                    os_type,
                    region,
                    cpu,
                    ram,
                    json,
                } => {
                    let t = services.import_template(
                        &file,
                        skiff::service::ImportTemplate {
                            name,
                            version,
                            description,
                            os_type,
                            region,
                            cpu,
                            ram,
                        },
                    )?;
                    if json {
                        println!("{}", serde_json::json!({"id": t.id, "storage": t.storage}));
                    } else {
                        println!(
                            "imported {} {} as template {} ({} GB minimum disk)",
                            t.name, t.version, t.id, t.storage
                        );
                    }
                }
                TemplateCommand::List => {
                    for t in services.all_templates()? {
                        let image = t
                            .image
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| "(no image)".into());
                        println!("{}  {} {}  {}", t.id, t.name, t.version, image);
                    }
                }
            }
        }
        Command::Repo { command } => repo_command(command)?,
        Command::Backup {
            command: BackupCommand::Verify { id },
        } => verify(&cfg.backup_dir(), id.as_ref())?,
        Command::Config => print!("{}", skiff::config::to_toml(&cfg)),
        Command::Openapi => println!("{}", skiff::api::openapi_json()),
    }
    Ok(())
}
