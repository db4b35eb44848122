//! schemathesis against a real server: the served spec (all phases, positive and
//! negative data, compute off), and the Raff contract itself for every implemented
//! operation on an appliance with real compute (all phases including stateful, every
//! check). The contract run's only accepted findings are the departures listed in
//! `DEPARTURES` (each one explained in docs/api.md). A run with a wrong key must fail,
//! so the suite cannot pass without really authenticating.

mod common;
use common::vmhost::*;
use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const CHECKS: &str =
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

fn schemathesis() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SCHEMATHESIS_BIN") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/schemathesis");
    if venv.exists() {
        return Some(venv);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v schemathesis"])
        .output()
        .ok()?;
    found
        .status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&found.stdout).trim()))
}

/// The contract lives beside the clone (`../shared/api/`), not in it: a clone without
/// it cannot run the contract tests, and says so rather than let schemathesis guess.
fn contract_yaml() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/api/raff-openapi.yaml");
    assert!(
        p.is_file(),
        "the Raff contract is not at {}: clone skiff next to the project's shared/ directory",
        p.display()
    );
    p
}

struct Run<'a> {
    bin: &'a Path,
    server: &'a Server,
}

impl Run<'_> {
    /// Runs schemathesis with `args` and returns (success, output).
    fn run(&self, spec: &Path, key: &str, args: &[&str]) -> (bool, String) {
        let cfg = self.server.dir.path().join("schemathesis.toml");
        std::fs::write(&cfg, "[warnings]\nfail-on = [\"missing_auth\"]\n").unwrap();
        let out = Command::new(self.bin)
            .arg("--config-file")
            .arg(&cfg)
            .arg("run")
            .arg(spec)
            .args(["--url", &self.server.base])
            .args(["-H", &format!("X-API-Key: {key}")])
            .args(if args.contains(&"--checks") {
                &[][..]
            } else {
                &["--checks", CHECKS][..]
            })
            .args(["--seed", "20261123", "--max-examples", "40"])
            .args(["--report-dir"])
            .arg(self.server.dir.path().join("report"))
            .args(args)
            .current_dir(self.server.dir.path())
            .env(
                "SCHEMATHESIS_HOOKS",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract_hooks.py"),
            )
            .env("ST_PROTECTED_IDS", &self.server.admin.api_key_id)
            .env("NO_COLOR", "1")
            .output()
            .expect("run schemathesis");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(400)..].join("\n")
}

#[test]
fn schemathesis_finds_no_failure_in_the_served_spec_or_the_contract() {
    let Some(bin) = schemathesis() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "schemathesis is not installed, and CI must run the contract tests (scripts/test.sh installs it)"
        );
        eprintln!("\n!!!!!!!! SKIP: schemathesis not installed; run scripts/test.sh to install it !!!!!!!!\n");
        return;
    };
    let s = Server::start(RELAXED);
    let run = Run {
        bin: &bin,
        server: &s,
    };
    let served = s.dir.path().join("served.json");
    std::fs::write(&served, s.call("GET", "/api/openapi.json").send().text).unwrap();
    let key = s.admin.api_key.clone();

    // 1. The served spec, every operation, positive and negative data.
    let (ok, out) = run.run(&served, &key, &["--phases", "examples,coverage,fuzzing"]);
    assert!(ok, "served spec:\n{}", tail(&out));

    // 2. Stateful sequences over the served spec.
    let (ok, out) = run.run(&served, &key, &["--phases", "stateful"]);
    assert!(ok, "served spec, stateful:\n{}", tail(&out));

    // The key survived all of it, so the runs above really were authenticated.
    assert_eq!(s.admin_call("GET", "/api/v1/projects").send().status, 200);

    // 3. A wrong key must fail the run.
    let wrong = "raff_ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    let (ok, out) = run.run(
        &served,
        wrong,
        &["--phases", "coverage", "--max-examples", "5"],
    );
    assert!(!ok, "a run with a wrong key passed:\n{}", tail(&out));
}

/// What the contract run may report, and why (docs/api.md, "Where skiff departs").
/// Each entry: check id, response status, and a text the response body must contain
/// ("" for any); `negative_only` limits it to the run with schema-violating data.
struct Departure {
    check: &'static str,
    status: u16,
    body: &'static str,
    negative_only: bool,
}

const fn d(check: &'static str, status: u16, body: &'static str, negative_only: bool) -> Departure {
    Departure {
        check,
        status,
        body,
        negative_only,
    }
}

const DEPARTURES: &[Departure] = &[
    // The contract documents neither on most operations; they can happen on every one.
    d("ST103", 401, "", false),
    d("ST103", 429, "", false),
    // Malformed input is 400 everywhere, also where the contract lists no 400.
    d("ST103", 400, "", true),
    // The default project, or one still holding resources, is not deleted.
    d("ST103", 409, "project", false),
    // skiff's stricter rules on schema-valid input.
    // Volumes: the host's disk is finite (409 like a VM's), one change at a time
    // (409), and the rules of docs/api.md on schema-valid input.
    d("ST103", 409, "the host is short of disk", false),
    d("ST103", 409, "the volume is busy", false),
    d("ST103", 409, "volumes already", false),
    // Snapshots: one change at a time, the contract's rule for `active`, and the
    // disks they live in (docs/api.md).
    d("ST103", 409, "retry when", false),
    d(
        "ST103",
        409,
        "snapshots are taken of running or stopped VMs",
        false,
    ),
    d("ST103", 409, "the snapshot is active", false),
    d("ST103", 409, "inside its OS disk", false),
    d("ST202", 400, "is required for a", false),
    d("ST202", 400, "hold a copy of the volume", false),
    d("ST202", 400, "names no disk", false),
    d("ST202", 400, "snapshot_id must be -1", false),
    d("ST202", 400, "stop the VM first", false),
    d("ST202", 400, "must be stopped (passive)", false),
    d("ST202", 400, "attach or detach volumes to match", false),
    d("ST202", 400, "size must be 1 to 10000 GB", false),
    d("ST202", 400, "new_size must be", false),
    d("ST202", 400, "detach it", false),
    d("ST202", 400, "is not attached to a VM", false),
    d("ST202", 400, "in this project", false),
    d("ST202", 400, "vpc_id: ", false),
    d("ST202", 400, "not both", false),
    d("ST202", 400, "vpc_name and vpc_cidr go together", false),
    d("ST202", 400, "skip_vpc goes without", false),
    // VPCs: the rules of docs/api.md on schema-valid input (the contract's pattern
    // allows any dotted quad and length), and the quota.
    d("ST202", 400, "overlaps", false),
    d("ST202", 400, "cidr prefix must be", false),
    d("ST202", 400, "is not in a private range", false),
    d("ST202", 400, "has host bits set", false),
    d("ST202", 400, "is not a block of the form", false),
    d("ST202", 400, "give name or description", false),
    d("ST202", 400, "are attached to the VPC", false),
    // Floating IPs: one public IPv4 per VM, no IPv6 pool, the pool's size
    // (docs/decisions/0012-floating-ips.md).
    d("ST202", 400, "a public IPv4 address of its own", false),
    d("ST202", 400, "has a floating IP already", false),
    d("ST202", 400, "has no VPC NIC", false),
    d("ST202", 400, "ip_id: ", false),
    d("ST202", 400, "is attached to a VM", false),
    d("ST202", 400, "only a reserved IP", false),
    d("ST202", 400, "own NIC stays", false),
    d("ST202", 400, "not available on this host", false),
    d("ST103", 409, "pool is exhausted", false),
    d("ST103", 402, "quota exceeded: vpcs", false),
    d("ST202", 400, "extra_storage", false),
    d(
        "ST202",
        400,
        "give password or auto_generate_password, not both",
        false,
    ),
    d("ST202", 400, "public_key", false),
    d("ST202", 400, "ports apply to TCP and UDP only", false),
    d("ST202", 400, "expires_at must be in the future", false),
    d("ST202", 400, "is not an account role", false),
    // IAM (docs/api.md): the owner is no member record; system roles are read-only
    // (the notes: 400); giving a role checks its scope and that it is not the owner's;
    // the contract's "at least one field" / "exactly one of" / "role_id required" rules
    // are in its prose, not its schemas.
    d("ST202", 400, "the account owner cannot be removed", false),
    d(
        "ST202",
        400,
        "the owner's membership cannot be changed",
        false,
    ),
    d("ST202", 400, "system roles cannot be", false),
    d("ST202", 400, "the owner role cannot be given", false),
    d("ST202", 400, "give role_id or status", false),
    d("ST202", 400, "missing field `role_id`", false),
    d("ST202", 400, "names a role of scope", false),
    d("ST202", 400, "give exactly one of", false),
    d("ST202", 400, "a role of scope", false),
    d("ST202", 400, "is not a role of this account", false),
    d("ST202", 400, "is not a user of this account", false),
    d("ST202", 400, "is not an API key of this account", false),
    d("ST202", 400, "is already a member", false),
    d("ST202", 400, "email must be an email address", false),
    d(
        "ST202",
        400,
        "an API key's account role is set when it is created",
        false,
    ),
    d("ST202", 400, "a pending invitation has no status", false),
    d("ST202", 400, "status must be active or suspended", false),
    d("ST202", 400, "you cannot", false),
    d("ST103", 403, "you cannot", false),
    d("ST103", 400, "the account owner cannot be removed", false),
    d(
        "ST103",
        400,
        "the owner's membership cannot be changed",
        false,
    ),
    d("ST103", 400, "system roles cannot be", false),
    d("ST103", 400, "the owner role cannot be given", false),
    d("ST103", 400, "give role_id or status", false),
    d("ST103", 400, "missing field `role_id`", false),
    d("ST103", 400, "names a role of scope", false),
    d("ST103", 400, "give exactly one of", false),
    d("ST103", 400, "a role of scope", false),
    d("ST103", 400, "is not a role of this account", false),
    d("ST103", 400, "is not a user of this account", false),
    d("ST103", 400, "is not an API key of this account", false),
    d("ST103", 400, "is already a member", false),
    d("ST103", 400, "email must be an email address", false),
    d(
        "ST103",
        400,
        "an API key's account role is set when it is created",
        false,
    ),
    d("ST103", 400, "a pending invitation has no status", false),
    d("ST103", 400, "status must be active or suspended", false),
    d("ST103", 400, "you cannot", false),
    // The owner made by `skiff init` signs in as `admin`: its member row shows that
    // name as `email` (docs/api.md).
    d(
        "ST108",
        200,
        "\"email\":\"admin\",\"role\":\"owner\"",
        false,
    ),
    d("ST202", 400, "names no VM in this project", false),
    d("ST202", 400, "expected i64", false),
    d("ST202", 400, "expected u64", false),
];

/// One reported failure: operation, check ids, status, first body line.
#[derive(Debug)]
struct Finding {
    op: String,
    checks: Vec<String>,
    status: u16,
    body: String,
}

/// Reads schemathesis's FAILURES section.
fn findings(out: &str) -> Vec<Finding> {
    let Some((_, failures)) = out.split_once("FAILURES") else {
        return vec![];
    };
    let mut op = String::new();
    let mut all: Vec<Finding> = vec![];
    let mut lines = failures.lines().peekable();
    while let Some(l) = lines.next() {
        let t = l.trim();
        if t.starts_with("___") && t.ends_with("___") {
            op = t.trim_matches('_').trim().to_string();
        } else if t.contains(". Test Case ID:")
            && t.chars().next().is_some_and(|c| c.is_ascii_digit())
        {
            all.push(Finding {
                op: op.clone(),
                checks: vec![],
                status: 0,
                body: String::new(),
            });
        } else if let Some(f) = all.last_mut() {
            if let Some(rest) = t.strip_prefix("- ST") {
                f.checks.push(format!(
                    "ST{}",
                    rest.split_whitespace().next().unwrap_or("")
                ));
            } else if f.status == 0
                && t.starts_with('[')
                && t.len() > 4
                && t[1..4].bytes().all(|b| b.is_ascii_digit())
            {
                f.status = t[1..4].parse().unwrap_or(0);
                while let Some(n) = lines.peek() {
                    if n.trim().is_empty() {
                        lines.next();
                    } else {
                        f.body = n.trim().to_string();
                        break;
                    }
                }
            }
        }
    }
    all
}

/// The findings no departure explains.
fn unexplained(out: &str, negative: bool) -> Vec<Finding> {
    findings(out)
        .into_iter()
        .filter(|f| {
            f.checks.is_empty()
                || !f.checks.iter().all(|c| {
                    DEPARTURES.iter().any(|d| {
                        d.check == c
                            && d.status == f.status
                            && f.body.contains(d.body)
                            && (negative || !d.negative_only)
                    })
                })
        })
        .collect()
}

#[test]
fn findings_are_read_from_schemathesis_output() {
    let out = "x\n=== FAILURES ===\n___ GET /api/v1/vms ___\n1. Test Case ID: a\n\n- ST103 Undocumented status code\n\n    Received: 400\n\n[400] Bad Request:\n\n    `{\"message\":\"bad\"}`\n\n___ POST /api/v1/ssh-keys ___\n1. Test Case ID: b\n\n- ST202 Schema-valid request rejected\n\n[400] Bad Request:\n\n    `{\"message\":\"public_key is odd\"}`\n2. Test Case ID: c\n- ST108 Response violates schema\n[200] OK:\n\n    `{}`\n";
    let f = findings(out);
    assert_eq!(f.len(), 3, "{f:?}");
    assert_eq!((f[0].op.as_str(), f[0].status), ("GET /api/v1/vms", 400));
    assert_eq!(f[1].checks, ["ST202"]);
    // A 400 on valid data is explained only where it is negative data.
    assert_eq!(unexplained(out, true).len(), 1);
    assert_eq!(unexplained(out, false).len(), 2);
    assert_eq!(unexplained(out, false)[1].checks, ["ST108"]);
}

#[test]
fn schemathesis_finds_nothing_unexplained_in_the_raff_contract_with_real_compute() {
    let Some(bin) = schemathesis() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "schemathesis is not installed, and CI must run the contract tests (scripts/test.sh installs it)"
        );
        eprintln!("\n!!!!!!!! SKIP: schemathesis not installed; run scripts/test.sh to install it !!!!!!!!\n");
        return;
    };
    let Some(h) = host() else { return };
    enter_netns(&h.netns);
    let mut s = Server::start(&format!(
        "{}\n[network.vpc]\nfloating_cidr = \"10.233.0.0/28\"\ntransit_cidr = \"169.254.33.0/24\"\n",
        config(&h, "10.231.0.192/27", "10.231.0.193", "sct")
    ));
    let _guard = DomainGuard(s.data());
    // The run's key: exempt from rate limiting, shown as the contract's `high` tier.
    s.kill();
    let out = s.admin(&["admin", "set-tier", &s.admin.api_key_id, "unlimited"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.spawn();
    let p = s.admin.project_id.clone();
    // A real guest for the stateful phase to find through the list links.
    let r = s.admin_call("POST", "/api/v1/vms").project(&p).json(json!({
        "name": "contract-vm", "template_id": TEMPLATE_ID, "pricing_id": 1,
        "region": "us-east", "ssh_keys": [ED25519]}));
    assert_eq!(r.status, 201, "{}", r.text);
    let vm = r.body["data"]["id"].as_str().unwrap().to_string();
    wait_status(&s, &vm, "active", Duration::from_secs(180));
    let r = s.admin_call("GET", "/api/v1/vms").send();
    assert_eq!(
        r.body["data"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );

    let run = Run {
        bin: &bin,
        server: &s,
    };
    let only = format!("^({})$", CONTRACT_CHECKED.join("|"));
    let header = format!("X-Project-ID: {p}");
    let key = s.admin.api_key.clone();
    for (mode, phases) in [
        ("positive", "examples,coverage,fuzzing,stateful"),
        ("negative", "examples,coverage,fuzzing"),
    ] {
        let (_, out) = run.run(
            &contract_yaml(),
            &key,
            &[
                "--checks",
                "all",
                "--mode",
                mode,
                "--phases",
                phases,
                "--include-operation-id-regex",
                &only,
                "-H",
                &header,
            ],
        );
        let selected = format!("{} selected / ", CONTRACT_CHECKED.len());
        assert!(
            out.contains(&selected),
            "not every operation ran:\n{}",
            tail(&out)
        );
        assert!(
            out.contains("Stateful") || mode == "negative",
            "{}",
            tail(&out)
        );
        let left = unexplained(&out, mode == "negative");
        assert!(
            left.is_empty(),
            "contract, {mode} data: {} finding(s) no departure explains: {left:#?}\n{}",
            left.len(),
            tail(&out)
        );
        assert!(
            !out.contains("Schemathesis v") || out.contains(" passed"),
            "{}",
            tail(&out)
        );
    }
    // The key survived all of it, so the runs above really were authenticated.
    assert_eq!(s.admin_call("GET", "/api/v1/projects").send().status, 200);
}
