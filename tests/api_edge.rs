//! What every route shares: authentication, the project header, error bodies for bad
//! input, rate limits, request ids and metrics.

mod common;
use common::*;
use serde_json::json;

#[test]
fn keys_are_required_and_checked() {
    let s = Server::start(RELAXED);
    for path in [
        "/api/v1/projects",
        "/api/v1/ssh-keys",
        "/api/v1/api-keys",
        "/api/v1/permissions",
        "/api/v1/nowhere",
    ] {
        assert!(
            s.call("GET", path).send().error(401).contains("X-API-Key"),
            "{path}"
        );
        let m = s
            .call("GET", path)
            .key("raff_0000000000000000000000000000000000000000000000000000000000000000")
            .send()
            .error(401);
        assert_eq!(m, "invalid API key");
    }
    let r = s.call("GET", "/api/v1/projects").send();
    assert_eq!(r.body["error"], "Unauthorized");
}

#[test]
fn the_project_header_is_required_where_the_operation_needs_it() {
    let s = Server::start(RELAXED);
    let r = s
        .admin_call("POST", "/api/skiff/v1/jobs/diag")
        .json(json!({"steps": 1}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"error": "Bad Request", "message": "X-Project-ID required"})
    );
    assert!(s
        .admin_call("POST", "/api/skiff/v1/jobs/diag")
        .project("not-a-uuid")
        .json(json!({"steps": 1}))
        .error(400)
        .contains("UUID"));
    s.admin_call("POST", "/api/skiff/v1/jobs/diag")
        .project("6f1c1c52-0000-4000-8000-000000000001")
        .json(json!({"steps": 1}))
        .error(404);
    let r = s
        .admin_call("POST", "/api/skiff/v1/jobs/diag")
        .project(&s.admin.project_id)
        .json(json!({"steps": 2, "step_ms": 1}));
    assert_eq!(r.status, 202, "{}", r.text);
    let job = s.wait_job(
        r.body["data"]["id"].as_str().unwrap(),
        std::time::Duration::from_secs(20),
    );
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["progress"], 100);
    let r = s
        .admin_call("GET", "/api/skiff/v1/jobs")
        .project(&s.admin.project_id)
        .send();
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    // Account-scoped operations ignore the header.
    let r = s
        .admin_call("GET", "/api/v1/projects")
        .project("garbage")
        .send();
    assert_eq!(r.status, 200);
}

#[test]
fn malformed_requests_get_clear_4xx_bodies() {
    let s = Server::start("max_body_bytes = 4096\n".to_string().as_str());
    let post = |ct: &str, body: &[u8]| s.admin_call("POST", "/api/v1/projects").raw(ct, body);
    assert!(post("application/json", b"{\"name\": ")
        .error(400)
        .contains("JSON"));
    assert!(post("application/json", b"{\"name\": [1]}")
        .error(400)
        .contains("invalid"));
    assert!(post("application/json", b"").error(400).len() > 3);
    // The body is read as JSON whatever its declared type (curl -d sends a form type).
    assert_eq!(post("text/plain", b"{\"name\": \"x\"}").status, 201);
    post("application/x-www-form-urlencoded", b"name=x").error(400);
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(10_000));
    let r = post("application/json", big.as_bytes());
    r.error(413);

    let r = s.admin_call("PATCH", "/api/v1/projects").json(json!({}));
    assert!(r.error(405).contains("GET, POST"));
    assert_eq!(r.header("allow"), Some("GET, POST"));
    let r = s.call("DELETE", "/health").send();
    r.error(405);
    s.admin_call("GET", "/api/v1/vms-and-more")
        .send()
        .error(404);
    s.call("GET", "/nothing/here").send().error(404);
    s.call("GET", "/api/v1/public/nothing").send().error(404);
    s.admin_call("GET", "/api/v1/ssh-keys/not-a-uuid")
        .send()
        .error(404);
    s.admin_call(
        "GET",
        "/api/v1/api-keys/6f1c1c52-0000-4000-8000-000000000001",
    )
    .send()
    .error(404);
    // The server is still fine afterwards.
    assert_eq!(s.call("GET", "/health").send().status, 200);
    assert_eq!(
        s.admin_call("GET", "/api/v1/projects").send().body["total"],
        2
    );
}

#[test]
fn rate_limits_follow_the_key_tier() {
    let cfg = "[rate_limit.standard]\nper_second = 2\nburst = 4\n[rate_limit.high]\nper_second = 50\nburst = 50\n";
    let mut s = Server::start(cfg);
    s.kill();
    let unlimited = s.create_account("bench");
    let out = s.admin(&["admin", "set-tier", &unlimited.api_key_id, "unlimited"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.spawn();

    let mut statuses = vec![];
    let mut limited = None;
    for _ in 0..10 {
        let r = s.admin_call("GET", "/api/v1/permissions").send();
        statuses.push(r.status);
        if r.status == 429 {
            limited.get_or_insert(r);
        } else {
            assert_eq!(r.header("x-ratelimit-limit"), Some("2"));
            assert!(r.header("x-ratelimit-remaining").is_some());
        }
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        (4..=5).contains(&ok),
        "burst of 4 (+1 refilled at most): {statuses:?}"
    );
    let r = limited.expect("some request was limited");
    assert_eq!(r.body["error"], "Rate limit exceeded");
    assert_eq!(
        r.body["message"],
        "Maximum 2 requests per second allowed for your tier"
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));

    // Another key, of the high tier, is not affected; the unlimited key never is.
    let hk = s
        .admin_call("POST", "/api/v1/api-keys")
        .json(json!({"name": "h", "rate_limit_tier": "high"}));
    // (That call itself may be limited; wait out the window.)
    let hk = if hk.status == 429 {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        s.admin_call("POST", "/api/v1/api-keys")
            .json(json!({"name": "h", "rate_limit_tier": "high"}))
    } else {
        hk
    };
    assert_eq!(hk.status, 201, "{}", hk.text);
    let high = hk.body["data"]["secret"].as_str().unwrap().to_string();
    for _ in 0..20 {
        assert_eq!(
            s.call("GET", "/api/v1/permissions")
                .key(&high)
                .send()
                .status,
            200
        );
    }
    for _ in 0..100 {
        let r = s
            .call("GET", "/api/v1/permissions")
            .key(&unlimited.api_key)
            .send();
        assert_eq!(r.status, 200);
        assert!(r.header("x-ratelimit-limit").is_none());
    }
    let r = s
        .call("GET", &format!("/api/v1/api-keys/{}", unlimited.api_key_id))
        .key(&unlimited.api_key)
        .send();
    // The contract's enum has two tiers: unlimited shows as high, with skiff's flag.
    assert_eq!(r.body["data"]["rate_limit_tier"], "high");
    assert_eq!(r.body["data"]["rate_limit_unlimited"], true);
}

#[test]
fn request_ids_and_metrics() {
    let s = Server::start(RELAXED);
    let r = s
        .call("GET", "/health")
        .header("X-Request-ID", "trace-me-42")
        .send();
    assert_eq!(r.header("x-request-id"), Some("trace-me-42"));
    let a = s.call("GET", "/health").send();
    let b = s.call("GET", "/health").send();
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));

    s.admin_call("GET", "/api/v1/projects").send();
    s.admin_call("GET", &format!("/api/v1/projects/{}", s.admin.project_id))
        .send();
    s.call("GET", "/api/v1/projects").send();
    let m = s.call("GET", "/metrics").send();
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let t = &m.text;
    assert!(
        t.contains(
            "skiff_http_requests_total{method=\"GET\",route=\"/api/v1/projects\",status=\"200\"} 1"
        ),
        "{t}"
    );
    assert!(
        t.contains("route=\"/api/v1/projects/{id}\",status=\"200\"} 1"),
        "{t}"
    );
    assert!(
        t.contains("route=\"/api/v1/projects\",status=\"401\"} 1"),
        "{t}"
    );
    assert!(
        t.contains("skiff_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 3"),
        "{t}"
    );
    assert!(t.contains("skiff_http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\",le=\"+Inf\"} 3"));
    assert!(t.contains("skiff_jobs{status=\"queued\"} 0"));
}

/// Unauthenticated requests cannot grow the metrics without bound (any token is an
/// HTTP method), and `/metrics` needs the configured token when one is set.
#[test]
fn metrics_labels_are_bounded_and_scraping_is_guarded() {
    let s = Server::start(RELAXED);
    for i in 0..40 {
        let _ = s.call(&format!("BREW{i}"), "/health").send();
        let _ = s.call("GET", &format!("/no/such/path/{i}")).send();
    }
    let m = s.call("GET", "/metrics").send();
    assert_eq!(m.status, 200);
    assert!(!m.text.contains("BREW"), "{}", m.text);
    assert!(m.text.contains("method=\"other\""), "{}", m.text);
    assert!(!m.text.contains("/no/such/path"), "{}", m.text);

    let t = Server::start(&format!("metrics_token = \"scrape-7f3a\"\n{RELAXED}"));
    assert_eq!(t.call("GET", "/metrics").send().status, 403);
    let wrong = t
        .call("GET", "/metrics")
        .header("Authorization", "Bearer scrape-0000")
        .send();
    assert_eq!(wrong.status, 403);
    let ok = t
        .call("GET", "/metrics")
        .header("Authorization", "Bearer scrape-7f3a")
        .send();
    assert_eq!(ok.status, 200);
    assert!(ok.text.contains("skiff_http_requests_total"));
}
