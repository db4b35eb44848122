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
    /// Print the effective configuration.
    Config,
    /// Print the OpenAPI document this build serves.
    Openapi,
}

#[derive(Subcommand)]
enum TemplateCommand {
    /// Import a bootable disk image (any format qemu-img reads) as a template.
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
enum AdminCommand {
    /// Create another account (a tenant) with its own project and owner key.
    CreateAccount {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Set an API key's rate-limit tier: standard, high or unlimited.
    SetTier { key_id: uuid::Uuid, tier: String },
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
            })
        );
    } else {
        println!("account:     {}", r.account_id);
        println!("project:     {} (default)", r.project_id);
        println!("admin key:   {}", r.api_key);
        println!("             shown once; skiff keeps only its hash");
    }
}

fn main() -> anyhow::Result<()> {
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
        Command::Config => print!("{}", skiff::config::to_toml(&cfg)),
        Command::Openapi => println!("{}", skiff::api::openapi_json()),
    }
    Ok(())
}
