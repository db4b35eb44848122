//! API keys and permissions through the API.

mod common;
use common::*;
use serde_json::json;

#[test]
fn api_key_lifecycle_and_secret_shown_once() {
    let s = Server::start(RELAXED);
    let r = s.admin_call("POST", "/api/v1/api-keys").json(json!({
        "name": "Production CI", "rate_limit_tier": "high",
        "expires_at": "2099-01-01T00:00:00Z",
        "role_id": role_id(&s, "admin"),
    }));
    assert_eq!(r.status, 201, "{}", r.text);
    let k = r.body["data"].clone();
    let secret = k["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("raff_") && secret.len() == 69);
    assert_eq!(k["key_prefix"], &secret[..13]);
    assert_eq!(k["rate_limit_tier"], "high");
    assert_eq!(k["role_slug"], "admin");
    assert_eq!(k["scope"], "public");
    assert_eq!(k["is_active"], true);
    let id = k["id"].as_str().unwrap().to_string();

    // The new key works; reads never show the secret again.
    let r = s
        .call("GET", &format!("/api/v1/api-keys/{id}"))
        .key(&secret)
        .send();
    assert_eq!(r.status, 200);
    assert!(r.body["data"].get("secret").is_none());
    assert!(!r.text.contains(&secret[13..]));
    assert!(
        r.body["data"]["last_used_at"].is_string(),
        "use is recorded"
    );
    let list = s.admin_call("GET", "/api/v1/api-keys").send();
    assert_eq!(list.body["total"], 2);
    assert!(!list.text.contains(&secret[13..]));

    // Regenerate: the old secret stops working at once.
    let r = s
        .admin_call("POST", &format!("/api/v1/api-keys/{id}/regenerate"))
        .send();
    assert_eq!(r.status, 200);
    let fresh = r.body["data"]["secret"].as_str().unwrap().to_string();
    assert_ne!(fresh, secret);
    assert_eq!(
        r.body["data"]["name"], "Production CI",
        "name and role stay"
    );
    assert_eq!(r.body["data"]["role_slug"], "admin");
    s.call("GET", "/api/v1/projects")
        .key(&secret)
        .send()
        .error(401);
    assert_eq!(
        s.call("GET", "/api/v1/projects").key(&fresh).send().status,
        200
    );

    // Disable, re-enable, rename.
    let r = s
        .admin_call("PATCH", &format!("/api/v1/api-keys/{id}"))
        .json(json!({"is_active": false}));
    assert_eq!(
        (r.status, r.body["data"]["is_active"].clone()),
        (200, json!(false))
    );
    assert!(s
        .call("GET", "/api/v1/projects")
        .key(&fresh)
        .send()
        .error(401)
        .contains("disabled"));
    let r = s
        .admin_call("PATCH", &format!("/api/v1/api-keys/{id}"))
        .json(json!({"is_active": true, "name": "CI", "rate_limit_tier": "standard"}));
    assert_eq!(r.body["data"]["name"], "CI");
    assert_eq!(r.body["data"]["rate_limit_tier"], "standard");
    assert_eq!(
        s.call("GET", "/api/v1/projects").key(&fresh).send().status,
        200
    );

    // Revoke.
    let r = s
        .admin_call("DELETE", &format!("/api/v1/api-keys/{id}"))
        .send();
    assert_eq!((r.status, r.body["success"].clone()), (200, json!(true)));
    s.call("GET", "/api/v1/projects")
        .key(&fresh)
        .send()
        .error(401);
    s.admin_call("GET", &format!("/api/v1/api-keys/{id}"))
        .send()
        .error(404);
    s.admin_call("POST", &format!("/api/v1/api-keys/{id}/regenerate"))
        .send()
        .error(404);
}

fn role_id(s: &Server, slug: &str) -> String {
    let r = s.admin_call("GET", "/api/v1/roles").send();
    assert_eq!(r.status, 200, "{}", r.text);
    let role = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["slug"] == slug)
        .cloned();
    role.expect("system role")["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn system_roles_are_listed_with_their_permissions() {
    let s = Server::start(RELAXED);
    let r = s.admin_call("GET", "/api/v1/roles?scope=project").send();
    let roles = r.body["data"].as_array().unwrap();
    assert!(roles
        .iter()
        .all(|r| r["scope"] == "project" && r["is_system"] == true));
    let viewer = roles.iter().find(|r| r["slug"] == "viewer").unwrap();
    let perms: Vec<_> = viewer["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(perms.contains(&"vm.view") && !perms.contains(&"vm.power"));
    let id = role_id(&s, "owner");
    let r = s.admin_call("GET", &format!("/api/v1/roles/{id}")).send();
    assert_eq!(r.body["data"]["name"], "Owner");
    s.admin_call("GET", "/api/v1/roles/6f1c1c52-0000-4000-8000-000000000001")
        .send()
        .error(404);
}

#[test]
fn bad_api_key_requests_are_refused() {
    let s = Server::start(RELAXED);
    let post = |b: serde_json::Value| s.admin_call("POST", "/api/v1/api-keys").json(b);
    post(json!({})).error(400);
    post(json!({"name": ""})).error(400);
    post(json!({"name": "k", "rate_limit_tier": "unlimited"})).error(400);
    post(json!({"name": "k", "rate_limit_tier": "ludicrous"})).error(400);
    assert!(
        post(json!({"name": "k", "expires_at": "2001-01-01T00:00:00Z"}))
            .error(400)
            .contains("future")
    );
    post(json!({"name": "k", "expires_at": "tomorrow"})).error(400);
    assert!(
        post(json!({"name": "k", "role_id": "6f1c1c52-0000-4000-8000-000000000001"}))
            .error(400)
            .contains("role_id")
    );
    // A project role is not an account role.
    post(json!({"name": "k", "role_id": role_id(&s, "viewer")})).error(400);
    let id = &s.admin.api_key_id;
    // An empty change is a no-op that returns the key.
    let r = s
        .admin_call("PATCH", &format!("/api/v1/api-keys/{id}"))
        .json(json!({}));
    assert_eq!(
        (r.status, r.body["data"]["name"].clone()),
        (200, json!("admin"))
    );
    s.admin_call("PATCH", &format!("/api/v1/api-keys/{id}"))
        .json(json!({"name": ""}))
        .error(400);
    s.admin_call("PATCH", &format!("/api/v1/api-keys/{id}"))
        .json(json!({"rate_limit_tier": "unlimited"}))
        .error(400);
    s.admin_call("GET", "/api/v1/api-keys?scope=private")
        .send()
        .error(400);
    assert_eq!(
        s.admin_call("GET", "/api/v1/api-keys").send().body["total"],
        1,
        "nothing was created"
    );
}

#[test]
fn keys_expire() {
    let s = Server::start(RELAXED);
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let r = s
        .admin_call("POST", "/api/v1/api-keys")
        .json(json!({"name": "short", "expires_at": soon}));
    assert_eq!(r.status, 201, "{}", r.text);
    let secret = r.body["data"]["secret"].as_str().unwrap().to_string();
    assert_eq!(
        s.call("GET", "/api/v1/permissions")
            .key(&secret)
            .send()
            .status,
        200
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(s
        .call("GET", "/api/v1/permissions")
        .key(&secret)
        .send()
        .error(401)
        .contains("expired"));

    // Setting an expiry in the past through PATCH expires a key at once.
    let r = s
        .admin_call("POST", "/api/v1/api-keys")
        .json(json!({"name": "other"}));
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    let secret = r.body["data"]["secret"].as_str().unwrap().to_string();
    let r = s
        .admin_call("PATCH", &format!("/api/v1/api-keys/{id}"))
        .json(json!({"expires_at": "2000-01-01T00:00:00Z"}));
    assert_eq!(r.status, 200, "{}", r.text);
    let m = s
        .call("GET", "/api/v1/permissions")
        .key(&secret)
        .send()
        .error(401);
    assert!(m.contains("expired"), "{m}");
}

#[test]
fn permission_catalog_filters_by_scope() {
    let s = Server::start(RELAXED);
    let r = s.admin_call("GET", "/api/v1/permissions").send();
    assert_eq!(r.status, 200);
    let all = r.body["data"].as_array().unwrap();
    assert!(all.len() >= 50);
    assert!(r.body.get("total").is_none());
    let names: Vec<_> = all.iter().map(|p| p["name"].as_str().unwrap()).collect();
    for n in [
        "vm.create",
        "account.apikeys.create",
        "project.members.view",
        "backup.manage",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    let vm = all.iter().find(|p| p["name"] == "vm.create").unwrap();
    assert_eq!(
        (vm["scope"].clone(), vm["category"].clone()),
        (json!("project"), json!("vm"))
    );
    for scope in ["account", "project"] {
        let r = s
            .admin_call("GET", &format!("/api/v1/permissions?scope={scope}"))
            .send();
        let list = r.body["data"].as_array().unwrap();
        assert!(!list.is_empty() && list.iter().all(|p| p["scope"] == scope));
    }
    s.admin_call("GET", "/api/v1/permissions?scope=galaxy")
        .send()
        .error(400);
    s.call("GET", "/api/v1/permissions").send().error(401);
}
