//! The command line: init, first start, configuration errors and the admin tools.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn init_json_then_init_again_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("skiff.toml");
    std::fs::write(&cfg, "").unwrap();
    let out = skiff(&dir.path().join("d"), &cfg, &["init", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["api_key"].as_str().unwrap().starts_with("raff_"));
    assert!(uuid::Uuid::parse_str(v["project_id"].as_str().unwrap()).is_ok());
    let again = skiff(&dir.path().join("d"), &cfg, &["init", "--json"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("initialised already"));
}

#[test]
fn serve_initialises_an_empty_data_dir_and_prints_the_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("SKIFF_DATA_DIR", dir.path().join("d"))
        .env("SKIFF_LOG", "warn")
        .env("SKIFF_COMPUTE__ENABLED", "false")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut key = None;
    let mut url = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(k) = line.strip_prefix("admin key:") {
            key = Some(k.trim().to_string());
        }
        if let Some(u) = line.strip_prefix("skiff listening on ") {
            url = Some(u.to_string());
            break;
        }
    }
    let (key, url) = (key.expect("key printed"), url.expect("url printed"));
    let r = ureq::get(&format!("{url}/api/v1/projects"))
        .set("X-API-Key", &key)
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    child.kill().unwrap();
    child.wait().unwrap();
    // Second start: already initialised, no key printed; the old key still works.
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("SKIFF_DATA_DIR", dir.path().join("d"))
        .env("SKIFF_LOG", "warn")
        .env("SKIFF_COMPUTE__ENABLED", "false")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = vec![];
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.starts_with("skiff listening on ");
        lines.push(line);
        if done {
            break;
        }
    }
    assert!(!lines.iter().any(|l| l.contains("admin key")), "{lines:?}");
    let url = lines
        .last()
        .unwrap()
        .strip_prefix("skiff listening on ")
        .unwrap()
        .to_string();
    let r = ureq::get(&format!("{url}/api/v1/projects"))
        .set("X-API-Key", &key)
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn configuration_errors_name_the_key_and_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("skiff.toml");
    for (text, key) in [
        ("listen = \"everywhere\"\n", "`listen`"),
        (
            "[rate_limit.standard]\nper_second = 0\nburst = 1\n",
            "rate_limit.standard.per_second",
        ),
        ("job_workers = \"many\"\n", "`job_workers`"),
        ("colour = \"blue\"\n", "colour"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let out = skiff(&dir.path().join("d"), &cfg, &["serve"]);
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{text}: {err}");
    }
    std::fs::write(&cfg, "").unwrap();
    let out = Command::new(BIN)
        .args(["--config"])
        .arg(&cfg)
        .arg("config")
        .env("SKIFF_RATE_LIMIT__HIGH__BURST", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rate_limit.high.burst"));
}

#[test]
fn admin_tools_refuse_while_the_server_runs() {
    let s = Server::start("");
    let out = skiff(&s.data(), &s.config(), &["admin", "create-account", "x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another skiff process"), "{err}");
}

#[test]
fn the_packaged_default_configuration_loads() {
    let cfg = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/skiff.toml");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("data_dir = \"/var/lib/skiff\""));
    assert!(shown.contains("per_second = 30"));
}

#[test]
fn imported_templates_join_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    std::fs::File::create(&raw)
        .unwrap()
        .set_len(3 * 1024 * 1024 * 1024 + 1)
        .unwrap();
    let mut s = Server::start("");
    s.kill();
    let out = s.admin(&[
        "template",
        "import",
        raw.to_str().unwrap(),
        "--name",
        "Debian",
        "--version",
        "12",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["storage"], 4, "3 GiB and a byte round up to 4 GB");
    let image = s.data().join("templates").join(format!("{id}.qcow2"));
    let info = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&image)
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format"], "qcow2");
    let bad = s.admin(&["template", "import", "/nonexistent", "--name", "x"]);
    assert!(!bad.status.success());
    s.spawn();
    let r = s.call("GET", "/api/v1/public/templates").send();
    let t = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        (
            t["name"].clone(),
            t["version"].clone(),
            t["storage"].clone()
        ),
        (
            serde_json::json!("Debian"),
            serde_json::json!("12"),
            serde_json::json!(4)
        )
    );
    // A VM may name it: validation passes and only the missing hypervisor stops it.
    let r = s
        .admin_call("POST", "/api/v1/vms")
        .project(&s.admin.project_id)
        .json(serde_json::json!({"name": "a", "template_id": id, "pricing_id": 1, "region": "us-east", "ssh_keys": [ED25519]}));
    assert!(
        r.error(503).contains("not available on this host"),
        "{}",
        r.text
    );
}

#[test]
fn doctor_reports_each_check_and_fails_on_what_would_stop_skiff() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("skiff.toml");
    std::fs::write(&cfg, "[compute]\nenabled = false\n").unwrap();
    let out = skiff(&dir.path().join("data"), &cfg, &["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for name in ["disk", "libvirt", "acceleration", "bridge", "clock", "tls"] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(name)),
            "no {name} line in {text}"
        );
    }
    assert!(text.contains("WARN  libvirt       compute is disabled"));
    assert!(text.contains("0 failed"));

    std::fs::write(
        &cfg,
        "[compute]\nenabled = false\n[tls]\nlisten = \"127.0.0.1:8443\"\ncert = \"/nonexistent.pem\"\nkey = \"/nonexistent.key\"\n",
    )
    .unwrap();
    let out = skiff(&dir.path().join("data"), &cfg, &["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  tls"), "{text}");
    assert!(text.contains("→ put a PEM certificate"), "{text}");
}
