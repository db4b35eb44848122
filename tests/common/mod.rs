//! A real skiff process on loopback, driven over real HTTP.
#![allow(dead_code)]

pub mod netns;
pub mod vmhost;
pub mod web;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Every operation of `shared/api/raff-openapi.yaml` that skiff implements: the
/// contract run checks them all.
pub const CONTRACT_CHECKED: &[&str] = &[
    "healthCheck",
    "listRegions",
    "listTemplates",
    "listVMPricing",
    "listVolumePricing",
    "listSnapshotPricing",
    "listBackupPricing",
    "listIPPricing",
    "listProjects",
    "createProject",
    "getProject",
    "updateProject",
    "deleteProject",
    "listVMs",
    "createVM",
    "getVM",
    "deleteVM",
    "deleteVMsBulk",
    "startVM",
    "stopVM",
    "rebootVM",
    "renameVM",
    "resetVMPassword",
    "reinstallVM",
    "factoryResetVM",
    "resizeVM",
    "resizeVMDisk",
    "hardRebootVM",
    "saveVMDiskAsImage",
    "listVolumes",
    "createVolume",
    "getVolume",
    "deleteVolume",
    "resizeVolume",
    "attachVolume",
    "detachVolume",
    "listSnapshots",
    "createSnapshot",
    "getSnapshot",
    "deleteSnapshot",
    "restoreSnapshot",
    "renameSnapshot",
    "listVPCs",
    "createVPC",
    "listVPCCIDRSuggestions",
    "getVPC",
    "updateVPC",
    "deleteVPC",
    "attachVMToVPC",
    "detachVMFromVPC",
    "listIPs",
    "reserveIP",
    "getIP",
    "releaseIP",
    "changeIP",
    "attachVMIP",
    "detachVMIP",
    "listSecurityGroups",
    "createSecurityGroup",
    "listSecurityGroupTemplates",
    "getSecurityGroup",
    "updateSecurityGroup",
    "deleteSecurityGroup",
    "listVMNetworks",
    "attachVMSecurityGroup",
    "detachVMSecurityGroup",
    "addVMTag",
    "updateVMTag",
    "removeVMTag",
    "getVMNotes",
    "appendVMNote",
    "updateVMNote",
    "upsertVMNote",
    "listBackups",
    "createBackup",
    "getBackup",
    "deleteBackup",
    "restoreBackup",
    "deleteBackupChain",
    "resetBackupChain",
    "listBackupSchedules",
    "createBackupSchedule",
    "getBackupSchedule",
    "updateBackupSchedule",
    "deleteBackupSchedule",
    "listSSHKeys",
    "createSSHKey",
    "getSSHKey",
    "updateSSHKey",
    "deleteSSHKey",
    "listRoles",
    "createRole",
    "getRole",
    "updateRole",
    "deleteRole",
    "listMembers",
    "addMember",
    "getMember",
    "updateMember",
    "removeMember",
    "listProjectMembers",
    "addProjectMember",
    "getProjectMember",
    "updateProjectMember",
    "removeProjectMember",
    "createAccountInvitation",
    "cancelInvitation",
    "createProjectInvitation",
    "listPermissions",
    "listApiKeys",
    "createApiKey",
    "getApiKey",
    "updateApiKey",
    "revokeApiKey",
    "regenerateApiKey",
];

pub const BIN: &str = env!("CARGO_BIN_EXE_skiff");

/// Generated with `ssh-keygen -t ed25519 -C user@host`.
pub const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICijR1pe98gwtbzironx3xoU8+TTiNIwvuC/XlQchoeT user@host";
pub const ED25519_FP: &str = "SHA256:giS2wX5XwZTg4bH/Zl3B/xHHBNqHfh9nyfgLYEF2P1A";

/// Limits high enough that ordinary tests never meet them.
pub const RELAXED: &str = "[rate_limit.standard]\nper_second = 100000\nburst = 100000\n\
                           [rate_limit.high]\nper_second = 100000\nburst = 100000\n";

pub struct Init {
    pub api_key: String,
    pub project_id: String,
    pub account_id: String,
    pub api_key_id: String,
    /// The owner's dashboard sign-in.
    pub user: String,
    pub password: String,
}

pub fn skiff(data: &Path, config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SKIFF_LISTEN")
        .env_remove("SKIFF_DATA_DIR")
        .output()
        .expect("run skiff")
}

fn parse_init(out: &std::process::Output) -> Init {
    assert!(
        out.status.success(),
        "skiff failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("init --json prints JSON");
    let s = |k: &str| v[k].as_str().expect(k).to_string();
    Init {
        api_key: s("api_key"),
        project_id: s("project_id"),
        account_id: s("account_id"),
        api_key_id: s("api_key_id"),
        user: s("user"),
        password: s("password"),
    }
}

pub struct Server {
    pub dir: tempfile::TempDir,
    pub base: String,
    /// The HTTPS base URL when the configuration has `[tls]`.
    pub https: Option<String>,
    pub admin: Init,
    child: Option<Child>,
}

impl Server {
    /// Initialises a fresh data directory with `config` and starts serving.
    pub fn start(config: &str) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        // The API tests need no VMs: keep them off the host's libvirt and bridges.
        let config = if config.contains("[compute]") {
            config.to_string()
        } else {
            format!("{config}\n[compute]\nenabled = false\n")
        };
        std::fs::write(dir.path().join("skiff.toml"), config).expect("write config");
        let admin = parse_init(&skiff(
            &dir.path().join("data"),
            &dir.path().join("skiff.toml"),
            &["init", "--json"],
        ));
        let mut s = Server {
            dir,
            base: String::new(),
            https: None,
            admin,
            child: None,
        };
        s.spawn();
        s
    }

    /// The running `skiff serve`'s process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("skiff.toml")
    }

    /// Offline admin command; the server must be stopped.
    pub fn admin(&self, args: &[&str]) -> std::process::Output {
        assert!(
            self.child.is_none(),
            "stop the server before admin commands"
        );
        skiff(&self.data(), &self.config(), args)
    }

    pub fn create_account(&self, name: &str) -> Init {
        parse_init(&self.admin(&["admin", "create-account", name, "--json"]))
    }

    /// Starts `skiff serve` on an ephemeral port and waits for its listening line.
    pub fn spawn(&mut self) {
        self.spawn_logging("warn", Stdio::inherit());
    }

    /// `spawn` with the log filter `level` and the log (stderr) sent to `log`.
    pub fn spawn_logging(&mut self, level: &str, log: Stdio) {
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(self.data())
            .arg("--config")
            .arg(self.config())
            .args(["--listen", "127.0.0.1:0", "serve"])
            .env("SKIFF_LOG", level)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn skiff serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("skiff listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("skiff serve did not start listening");
        self.base = url;
        let tls = std::fs::read_to_string(self.config()).is_ok_and(|c| c.contains("[tls]"));
        self.https = tls.then(|| {
            rx.recv_timeout(Duration::from_secs(30))
                .expect("skiff serve did not start listening on HTTPS")
        });
        self.child = Some(child);
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill");
            c.wait().expect("wait");
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn call(&self, method: &str, path: &str) -> Call<'_> {
        Call {
            server: self,
            req: ureq::request(method, &format!("{}{}", self.base, path))
                .timeout(Duration::from_secs(30)),
        }
    }

    /// `call` with the admin key already set.
    pub fn admin_call(&self, method: &str, path: &str) -> Call<'_> {
        self.call(method, path).key(&self.admin.api_key)
    }

    /// Polls a job until it is final.
    pub fn wait_job(&self, id: &str, within: Duration) -> Value {
        let until = Instant::now() + within;
        loop {
            let r = self
                .admin_call("GET", &format!("/api/skiff/v1/jobs/{id}"))
                .send();
            assert_eq!(r.status, 200, "{:?}", r.body);
            let s = r.body["data"]["status"].as_str().unwrap_or("").to_string();
            if s == "succeeded" || s == "failed" {
                return r.body["data"].clone();
            }
            assert!(Instant::now() < until, "job {id} still {s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Call<'a> {
    server: &'a Server,
    req: ureq::Request,
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the contract's error body and returns its message.
    pub fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{}",
            self.text
        );
        let e = self.body["error"].as_str().expect("error field");
        assert!(!e.is_empty());
        self.body["message"]
            .as_str()
            .expect("message field")
            .to_string()
    }
}

impl<'a> Call<'a> {
    pub fn key(mut self, key: &str) -> Self {
        self.req = self.req.set("X-API-Key", key);
        self
    }
    pub fn project(mut self, id: &str) -> Self {
        self.req = self.req.set("X-Project-ID", id);
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.req = self.req.set(k, v);
        self
    }
    pub fn send(self) -> Reply {
        reply(self.req.call())
    }
    pub fn json(self, body: Value) -> Reply {
        reply(self.req.send_json(body))
    }
    /// A raw body with an explicit content type.
    pub fn raw(self, content_type: &str, body: &[u8]) -> Reply {
        reply(self.req.set("Content-Type", content_type).send_bytes(body))
    }
    pub fn server(&self) -> &Server {
        self.server
    }
}

fn reply(r: Result<ureq::Response, ureq::Error>) -> Reply {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_string())))
        .collect();
    let text = resp.into_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        body,
    }
}
