//! schemathesis against a real server: the served spec (all phases, positive and
//! negative data) and the Raff contract itself for the operations implemented so far
//! (positive data). Checks: no 5xx, documented status codes, content types and
//! response schemas. A run with a wrong key must fail, so the suite cannot pass
//! without really authenticating.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

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

fn contract_yaml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/api/raff-openapi.yaml")
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
            .args(["--checks", CHECKS])
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

    // 3. The Raff contract for the implemented operations.
    let only = format!("^({})$", CONTRACT_CHECKED.join("|"));
    let (ok, out) = run.run(
        &contract_yaml(),
        &key,
        &[
            "--mode",
            "positive",
            "--phases",
            "examples,coverage,fuzzing",
            "--include-operation-id-regex",
            &only,
        ],
    );
    assert!(ok, "contract:\n{}", tail(&out));

    // The key survived all of it, so the runs above really were authenticated.
    assert_eq!(s.admin_call("GET", "/api/v1/projects").send().status, 200);

    // 4. A wrong key must fail the run.
    let wrong = "raff_ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    let (ok, out) = run.run(
        &served,
        wrong,
        &["--phases", "coverage", "--max-examples", "5"],
    );
    assert!(!ok, "a run with a wrong key passed:\n{}", tail(&out));
}
