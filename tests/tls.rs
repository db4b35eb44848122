//! HTTPS: `[tls]` serves the dashboard and the API with the operator's (here a fresh
//! self-signed) certificate; session cookies get `Secure` there; plain HTTP stays on
//! loopback unless allowed; a broken certificate stops the start with its reason.

mod common;
use common::*;
use std::process::{Command, Stdio};

fn self_signed(dir: &std::path::Path) {
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "30", "-subj", "/CN=skiff-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl made no certificate");
}

fn curl(args: &[&str]) -> String {
    let o = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn https_serves_api_and_dashboard_with_the_configured_certificate() {
    let certs = tempfile::tempdir().unwrap();
    self_signed(certs.path());
    let s = Server::start(&format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\ncert = \"{0}/cert.pem\"\nkey = \"{0}/key.pem\"\n",
        certs.path().display()
    ));
    let url = s.https.clone().expect("an HTTPS listener");
    assert!(url.starts_with("https://"), "{url}");
    // Verified against the certificate itself, not with -k.
    let ca = certs.path().join("cert.pem");
    let ca = ca.to_str().unwrap();
    assert_eq!(
        curl(&["--cacert", ca, &format!("{url}/health")]),
        "{\"status\":\"healthy\"}"
    );
    let login = curl(&["--cacert", ca, "-i", &format!("{url}/ui/login")]);
    let cookie = login
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    let plain = curl(&[&format!("{url}/api/v1/projects")]);
    assert!(
        plain.is_empty(),
        "an unknown certificate is refused by default"
    );
}

#[test]
fn plain_http_stays_on_loopback_and_a_bad_certificate_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("skiff.toml");
    std::fs::write(&cfg, "[compute]\nenabled = false\n").unwrap();
    let out = skiff(
        &dir.path().join("d"),
        &cfg,
        &["--listen", "0.0.0.0:0", "config"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loopback address"));

    std::fs::write(
        &cfg,
        "[compute]\nenabled = false\n[tls]\nlisten = \"127.0.0.1:0\"\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .arg("--config")
        .arg(&cfg)
        .args(["--listen", "127.0.0.1:0", "serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TLS: cannot read /nonexistent/cert.pem"),
        "{err}"
    );
}
