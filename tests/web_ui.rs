//! The dashboard over real HTTP without a browser: sign-in and its throttling, the
//! session cookie's flags, CSRF on every form, the same permissions as the API, a new
//! API key's secret shown once, sign-out, and `skiff admin set-password`. (The browser
//! walk-through with real guests is `system_dashboard.rs`.)

mod common;
use common::web::Browser;
use common::*;
use serde_json::json;

#[test]
fn sign_in_uses_strict_cookies_and_is_throttled() {
    let s = Server::start(RELAXED);
    let mut b = Browser::new(&s.base);
    let p = b.get("/ui/vms");
    assert_eq!(p.status, 303);
    assert_eq!(p.location, "/ui/login?next=%2Fui%2Fvms");
    let p = b.get("/ui/login");
    assert_eq!(p.status, 200);
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(p.set_cookie.contains(flag), "{flag} in {}", p.set_cookie);
    }
    assert!(
        !p.set_cookie.contains("Secure"),
        "plain HTTP has no Secure flag"
    );

    // No token: refused before the password is even looked at.
    let p = b.post(
        "/ui/login",
        &[("user", &s.admin.user), ("password", &s.admin.password)],
    );
    assert_eq!(p.status, 403, "{}", p.body);

    let before = b.cookie.clone();
    for _ in 0..5 {
        let p = b.sign_in(&s.admin.user, "not the password");
        assert_eq!(p.status, 401);
        assert!(p.body.contains("wrong user name or password"));
    }
    let p = b.sign_in(&s.admin.user, &s.admin.password);
    assert_eq!(p.status, 429, "throttled even with the right password");
    assert!(p.body.contains("Too many failed sign-ins"), "{}", p.body);
    assert_eq!(b.cookie, before, "no session was granted");
    assert_eq!(b.get("/ui/").status, 303);
}

#[test]
fn forms_need_the_token_and_pages_check_the_same_permissions() {
    let mut s = Server::start(RELAXED);
    s.kill();
    let other = s.create_account("tenant-two");
    s.spawn();
    let p = s.admin.project_id.clone();
    let g = s
        .admin_call("POST", "/api/v1/security-groups")
        .project(&p)
        .json(json!({"name": "admins-group", "rules": []}));
    assert_eq!(g.status, 201, "{}", g.text);
    let gid = g.body["data"]["id"].as_str().unwrap().to_string();

    let mut b = Browser::new(&s.base);
    let r = b.sign_in(&s.admin.user, &s.admin.password);
    assert_eq!((r.status, r.location.as_str()), (303, "/ui/"));
    for page in [
        "/ui/",
        "/ui/vms",
        "/ui/vms/new",
        "/ui/backups",
        "/ui/security-groups",
        "/ui/ssh-keys",
        "/ui/api-keys",
    ] {
        let r = b.get(page);
        assert_eq!(r.status, 200, "{page}: {}", r.body);
        assert!(r.body.contains("<main>"), "{page} is a full page");
    }
    let r = b.get(&format!("/ui/security-groups/{gid}"));
    assert!(r.body.contains("admins-group"));

    // A post without the token changes nothing; with it, the key is added.
    let form = [("name", "laptop"), ("public_key", ED25519)];
    let r = b.post("/ui/ssh-keys", &form);
    assert_eq!(r.status, 403);
    assert!(r.body.contains("did not come from this dashboard"));
    assert_eq!(
        s.admin_call("GET", "/api/v1/ssh-keys").send().body["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let t = b.csrf("/ui/ssh-keys");
    let r = b.post(
        "/ui/ssh-keys",
        &[("csrf", &t), ("name", "laptop"), ("public_key", ED25519)],
    );
    assert_eq!((r.status, r.location.as_str()), (303, "/ui/ssh-keys"));
    let r = b.get("/ui/ssh-keys");
    assert!(r.body.contains("SSH key laptop added"), "flash shown");
    assert!(r.body.contains(ED25519_FP));
    assert!(
        !b.get("/ui/ssh-keys").body.contains("SSH key laptop added"),
        "once"
    );
    // A service refusal comes back as a message, nothing stored.
    let r = b.post(
        "/ui/ssh-keys",
        &[
            ("csrf", &t),
            ("name", "bad"),
            ("public_key", "ssh-rsa nonsense"),
        ],
    );
    assert_eq!(r.status, 303);
    assert!(b.get("/ui/ssh-keys").body.contains("class=\"flash err\""));

    // Another account's user sees none of it and cannot change it.
    let mut o = Browser::new(&s.base);
    let r = o.sign_in(&other.user, &other.password);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(o.get(&format!("/ui/security-groups/{gid}")).status, 404);
    assert!(!o.get("/ui/security-groups").body.contains("admins-group"));
    assert!(!o.get("/ui/ssh-keys").body.contains("laptop"));
    let t = o.csrf("/ui/security-groups");
    let r = o.post(
        &format!("/ui/security-groups/{gid}/delete"),
        &[("csrf", &t)],
    );
    assert_eq!(r.status, 303);
    assert!(o.get("/ui/security-groups").body.contains("not found"));
    let still = s
        .admin_call("GET", &format!("/api/v1/security-groups/{gid}"))
        .project(&s.admin.project_id)
        .send();
    assert_eq!(still.status, 200, "the other tenant's delete did nothing");
    // One session's token does not work in another session.
    let r = o.post(
        "/ui/ssh-keys",
        &[
            ("csrf", &b.csrf("/ui/ssh-keys")),
            ("name", "x"),
            ("public_key", ED25519),
        ],
    );
    assert_eq!(r.status, 403);
}

#[test]
fn api_key_secret_is_shown_once_and_sign_out_ends_the_session() {
    let mut s = Server::start(RELAXED);
    let mut b = Browser::new(&s.base);
    assert_eq!(b.sign_in(&s.admin.user, &s.admin.password).status, 303);
    let t = b.csrf("/ui/api-keys");
    let r = b.post("/ui/api-keys", &[("csrf", &t), ("name", "ci")]);
    assert_eq!((r.status, r.location.as_str()), (303, "/ui/api-keys"));
    let page = b.get("/ui/api-keys").body;
    let at = page.find("<code id=\"new-secret\">").expect("secret shown") + 22;
    let secret = page[at..at + 69].to_string();
    assert!(secret.starts_with("raff_"), "{secret}");
    assert_eq!(
        s.call("GET", "/api/v1/projects").key(&secret).send().status,
        200
    );
    assert!(!b.get("/ui/api-keys").body.contains(&secret), "shown once");

    // Sign out: the old session id is dead.
    let old = b.cookie.clone();
    let t = b.csrf("/ui/");
    assert_eq!(b.post("/ui/logout", &[("csrf", &t)]).location, "/ui/login");
    b.cookie = old;
    assert_eq!(b.get("/ui/").status, 303);

    // The operator sets a new password offline; the old one stops working.
    s.kill();
    let out = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(s.data())
        .arg("--config")
        .arg(s.config())
        .args(["admin", "set-password", "admin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"a much better passphrase\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let short = s.admin(&["admin", "set-password", "admin"]);
    assert!(!short.status.success(), "an empty password is refused");
    s.spawn();
    let mut b = Browser::new(&s.base);
    assert_eq!(b.sign_in("admin", &s.admin.password).status, 401);
    assert_eq!(b.sign_in("admin", "a much better passphrase").status, 303);
}

/// Every dashboard response (page, asset, redirect, error) carries the security
/// headers; the policy allows no inline script and no framing, and the pages hold no
/// inline script for it to block.
#[test]
fn dashboard_responses_carry_security_headers() {
    let s = Server::start(RELAXED);
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    for path in [
        "/ui/login",
        "/ui/static/skiff.css",
        "/ui/vms",
        "/ui/no-such-page",
    ] {
        let r = match agent.get(&format!("{}{path}", s.base)).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{path}: {e}"),
        };
        let csp = r.header("content-security-policy").unwrap_or_default();
        for part in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {part} in {csp:?}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(r.header("referrer-policy"), Some("same-origin"), "{path}");
        if path == "/ui/login" {
            let body = r.into_string().unwrap();
            for tag in body.split("<script").skip(1) {
                assert!(
                    tag.trim_start().starts_with("src=") || tag.contains(" src="),
                    "inline script: {tag}"
                );
            }
            assert!(!body.contains(" style=") && !body.contains("<style"));
        }
    }
}

/// Peak resident memory of a process (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024
}

/// 200 strangers sign in at once, each from an address of its own (behind a trusted
/// proxy): only a few passwords are hashed at a time (argon2 takes ~19 MiB each), so
/// memory stays bounded; the rest are told to come back. Then the real owner, from its
/// own address, still gets in: strangers cannot lock it out. A client that is not the
/// trusted proxy cannot pick its address with the header.
#[test]
fn concurrent_sign_ins_are_bounded_and_cannot_lock_the_owner_out() {
    let s = Server::start(&format!("trusted_proxies = [\"127.0.0.1\"]\n{RELAXED}"));
    let before = peak_rss_mib(s.pid());
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..200)
            .map(|i| {
                let (base, user) = (s.base.clone(), s.admin.user.clone());
                scope.spawn(move || {
                    let mut b = Browser::new(&base);
                    b.forwarded_for = Some(format!("203.0.113.{}, 192.0.2.{}", i % 250, i));
                    b.sign_in(&user, "guess-0000").status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&401),
        "some passwords were checked: {statuses:?}"
    );
    let peak = peak_rss_mib(s.pid());
    assert!(
        peak < before + 250,
        "resident memory grew from {before} to {peak} MiB under 200 concurrent sign-ins"
    );

    // The owner at its own address: in, whatever the strangers did.
    let mut owner = Browser::new(&s.base);
    owner.forwarded_for = Some("198.51.100.7".into());
    let p = owner.sign_in(&s.admin.user, &s.admin.password);
    assert_eq!(p.status, 303, "{}", p.body);

    // An address that failed five times is throttled, whatever user it tries.
    let mut guesser = Browser::new(&s.base);
    guesser.forwarded_for = Some("192.0.2.250".into());
    for _ in 0..5 {
        assert_eq!(guesser.sign_in("nobody-here", "x").status, 401);
    }
    assert_eq!(
        guesser.sign_in(&s.admin.user, &s.admin.password).status,
        429
    );

    // Without a trusted proxy the header is ignored: the peer address counts.
    let t = Server::start(RELAXED);
    for i in 0..5 {
        let mut b = Browser::new(&t.base);
        b.forwarded_for = Some(format!("198.51.100.{i}"));
        assert_eq!(b.sign_in("nobody-here", "x").status, 401);
    }
    let mut b = Browser::new(&t.base);
    b.forwarded_for = Some("198.51.100.99".into());
    assert_eq!(b.sign_in(&t.admin.user, &t.admin.password).status, 429);
}

/// Host-wide actions are the host operator's (the account `skiff init` made, or one
/// `skiff admin set-operator` marks), never a tenant owner's: diagnostics, verifying the
/// whole backup repository, the host's capacity on the overview.
#[test]
fn host_operator_actions_are_the_operators_alone() {
    let mut s = Server::start(RELAXED);
    s.kill();
    let tenant = s.create_account("tenant-c");
    s.spawn();
    let as_tenant = |m: &str, path: &str| {
        s.call(m, path)
            .key(&tenant.api_key)
            .project(&tenant.project_id)
    };
    let msg = as_tenant("POST", "/api/skiff/v1/jobs/diag")
        .json(json!({"steps": 1}))
        .error(403);
    assert!(msg.contains("host operator"), "{msg}");
    as_tenant("POST", "/api/skiff/v1/backups/verify")
        .send()
        .error(403);
    let jobs = as_tenant("GET", "/api/skiff/v1/jobs").send();
    assert_eq!(jobs.body["data"], json!([]), "{}", jobs.text);

    // The operator may.
    let r = s
        .admin_call("POST", "/api/skiff/v1/jobs/diag")
        .project(&s.admin.project_id)
        .json(json!({"steps": 1}));
    assert_eq!(r.status, 202, "{}", r.text);
    let r = s.admin_call("POST", "/api/skiff/v1/backups/verify").send();
    assert_eq!(r.status, 202, "{}", r.text);

    // The overview shows host capacity to the operator only.
    let mut op = Browser::new(&s.base);
    assert_eq!(op.sign_in(&s.admin.user, &s.admin.password).status, 303);
    assert!(op.get("/ui/").body.contains("id=\"host-cpus\""));
    let mut t = Browser::new(&s.base);
    assert_eq!(t.sign_in(&tenant.user, &tenant.password).status, 303);
    let page = t.get("/ui/");
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains("id=\"host-cpus\""),
        "tenant sees host capacity"
    );

    // Granted by the operator's tool; the last operator cannot be taken away.
    s.kill();
    let o = s.admin(&["admin", "set-operator", "tenant-c"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = s.admin(&["admin", "set-operator", "--revoke", "admin"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = s.admin(&["admin", "set-operator", "--revoke", "tenant-c"]);
    assert!(!o.status.success(), "the last operator stays");
    assert!(String::from_utf8_lossy(&o.stderr).contains("only operator"));
    s.spawn();
    let r = s
        .call("POST", "/api/skiff/v1/jobs/diag")
        .key(&tenant.api_key)
        .project(&tenant.project_id)
        .json(json!({"steps": 1}));
    assert_eq!(r.status, 202, "{}", r.text);
    s.admin_call("POST", "/api/skiff/v1/jobs/diag")
        .project(&s.admin.project_id)
        .json(json!({"steps": 1}))
        .error(403);
}

/// The console websocket is this dashboard's alone: without an `Origin`, or with
/// another site's, it is refused before anything else is looked at.
#[test]
fn console_websocket_needs_this_dashboards_origin() {
    let s = Server::start(RELAXED);
    let mut b = Browser::new(&s.base);
    assert_eq!(b.sign_in(&s.admin.user, &s.admin.password).status, 303);
    let cookie = b.cookie.clone().unwrap();
    let path = "/ui/vms/6f1c1c52-0000-4000-8000-000000000001/vnc";
    let upgrade = |origin: Option<&str>| -> u16 {
        let mut req = ureq::get(&format!("{}{path}", s.base))
            .set("Cookie", &format!("skiff_session={cookie}"))
            .set("Connection", "Upgrade")
            .set("Upgrade", "websocket")
            .set("Sec-WebSocket-Version", "13")
            .set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
        if let Some(o) = origin {
            req = req.set("Origin", o);
        }
        match req.call() {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(c, _)) => c,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(upgrade(None), 403, "no Origin");
    assert_eq!(upgrade(Some("https://evil.example")), 403, "another site");
    // This dashboard's own origin passes the gate (and the VM does not exist).
    assert_eq!(upgrade(Some(&s.base)), 404);
}

/// Secrets never reach the log, even at the most verbose level: the keys and passwords
/// this test makes and uses are searched for in everything skiff wrote to stderr.
#[test]
fn secrets_never_reach_the_log() {
    let mut s = Server::start(RELAXED);
    s.kill();
    let log_path = s.dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    s.spawn_logging("trace", log.into());
    // A dashboard sign-in, wrong then right.
    let mut b = Browser::new(&s.base);
    assert_eq!(b.sign_in(&s.admin.user, "not-the-password-71").status, 401);
    assert_eq!(b.sign_in(&s.admin.user, &s.admin.password).status, 303);
    // A new API key, used once.
    let r = s
        .admin_call("POST", "/api/v1/api-keys")
        .json(json!({"name": "logged?"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let key = r.body["data"]["secret"].as_str().unwrap().to_string();
    assert_eq!(
        s.call("GET", "/api/v1/projects").key(&key).send().status,
        200
    );
    // A wrong key, too.
    let wrong = format!("{}0", &key[..key.len() - 1]);
    assert_eq!(
        s.call("GET", "/api/v1/projects").key(&wrong).send().status,
        401
    );
    s.kill();
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(text.contains("signed in"), "the log was written: {text}");
    for secret in [
        s.admin.api_key.as_str(),
        s.admin.password.as_str(),
        "not-the-password-71",
        key.as_str(),
        wrong.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret is in the log");
    }
}
