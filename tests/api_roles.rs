//! Custom roles through the API: their lifecycle, that a change reaches every key
//! holding the role at once, that refusals change nothing, and that no key grants
//! more than it holds (roles, keys, reading out another key's secret).

mod common;
use common::*;
use serde_json::{json, Value};

fn role_id(s: &Server, slug: &str) -> String {
    let r = s.admin_call("GET", "/api/v1/roles").send();
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["slug"] == slug)
        .unwrap_or_else(|| panic!("no role {slug}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn roles(s: &Server) -> Value {
    let r = s.admin_call("GET", "/api/v1/roles?limit=200").send();
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].clone()
}

/// A key of the admin's account with role `role`; returns (id, secret).
fn key_with(s: &Server, by: &str, role: &str) -> (String, String) {
    let r = s
        .call("POST", "/api/v1/api-keys")
        .key(by)
        .json(json!({"name": format!("with {role}"), "role_id": role}));
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.body["data"]["id"].as_str().unwrap().to_string(),
        r.body["data"]["secret"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_custom_role_is_made_changed_for_its_holders_at_once_and_deleted_when_unused() {
    let s = Server::start(RELAXED);
    let r = s.admin_call("POST", "/api/v1/roles").json(json!({
        "name": "Key auditor", "slug": "key-auditor", "description": "reads keys",
        "scope": "account",
        "permissions": ["account.projects.view", "account.apikeys.view"]}));
    assert_eq!(r.status, 201, "{}", r.text);
    let role = r.body["data"].clone();
    assert_eq!(role["is_system"], false);
    assert_eq!(role["scope"], "account");
    assert_eq!(role["account_id"], s.admin.account_id.as_str());
    assert_eq!(
        role["permissions"],
        json!(["account.projects.view", "account.apikeys.view"])
    );
    let id = role["id"].as_str().unwrap().to_string();
    let all = roles(&s);
    let last = all.as_array().unwrap().last().unwrap();
    assert_eq!(
        last["id"],
        id.as_str(),
        "custom roles follow the built-in ones"
    );
    let got = s.admin_call("GET", &format!("/api/v1/roles/{id}")).send();
    assert_eq!(got.body["data"], role);

    // A key with the role may do what it grants and nothing else.
    let (kid, secret) = key_with(&s, &s.admin.api_key, &id);
    let k = s
        .admin_call("GET", &format!("/api/v1/api-keys/{kid}"))
        .send();
    assert_eq!(k.body["data"]["role_slug"], "key-auditor");
    assert_eq!(k.body["data"]["role_name"], "Key auditor");
    let as_key = |m: &str, p: &str| s.call(m, p).key(&secret).send();
    assert_eq!(as_key("GET", "/api/v1/api-keys").status, 200);
    assert_eq!(as_key("GET", "/api/v1/ssh-keys").status, 403);
    assert_eq!(as_key("DELETE", &format!("/api/v1/roles/{id}")).status, 403);

    // A change applies to the key at its next request.
    let r = s
        .admin_call("PATCH", &format!("/api/v1/roles/{id}"))
        .json(json!({"name": "Key and SSH auditor",
                     "permissions": ["account.apikeys.view", "account.sshkeys.view"]}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["slug"], "key-auditor", "the slug stays");
    assert_eq!(as_key("GET", "/api/v1/ssh-keys").status, 200);
    assert_eq!(as_key("GET", "/api/v1/projects").status, 403);

    // In use: not deleted; free again: deleted, and gone.
    let r = s
        .admin_call("DELETE", &format!("/api/v1/roles/{id}"))
        .send();
    assert!(r.error(400).contains("in use"), "{}", r.text);
    assert_eq!(
        s.admin_call("DELETE", &format!("/api/v1/api-keys/{kid}"))
            .send()
            .status,
        200
    );
    let r = s
        .admin_call("DELETE", &format!("/api/v1/roles/{id}"))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["success"], true);
    s.admin_call("GET", &format!("/api/v1/roles/{id}"))
        .send()
        .error(404);

    // A project role is never a key's account role.
    let r = s.admin_call("POST", "/api/v1/roles").json(json!({
        "name": "VM watcher", "slug": "vm-watcher", "scope": "project",
        "permissions": ["vm.view"]}));
    assert_eq!(r.status, 201, "{}", r.text);
    let pr = r.body["data"]["id"].as_str().unwrap().to_string();
    let r = s
        .admin_call("POST", "/api/v1/api-keys")
        .json(json!({"name": "k", "role_id": pr}));
    assert!(r.error(400).contains("account role"));
}

#[test]
fn bad_role_requests_change_nothing() {
    let mut s = Server::start(RELAXED);
    let r = s.admin_call("POST", "/api/v1/roles").json(json!({
        "name": "Ops", "slug": "ops", "scope": "project", "permissions": ["vm.power"]}));
    assert_eq!(r.status, 201, "{}", r.text);
    let ops = r.body["data"]["id"].as_str().unwrap().to_string();
    let before = roles(&s);
    let post = |body: Value| s.admin_call("POST", "/api/v1/roles").json(body);
    for (body, why) in [
        (
            json!({"name": "", "slug": "a", "scope": "account", "permissions": ["account.roles.view"]}),
            "name",
        ),
        (
            json!({"name": "A", "slug": "Bad Slug", "scope": "account", "permissions": ["account.roles.view"]}),
            "slug",
        ),
        (
            json!({"name": "A", "slug": "owner", "scope": "account", "permissions": ["account.roles.view"]}),
            "system role",
        ),
        (
            json!({"name": "A", "slug": "ops", "scope": "project", "permissions": ["vm.view"]}),
            "taken",
        ),
        (
            json!({"name": "A", "slug": "a", "scope": "galaxy", "permissions": ["vm.view"]}),
            "scope",
        ),
        (
            json!({"name": "A", "slug": "a", "scope": "project", "permissions": []}),
            "at least one",
        ),
        (
            json!({"name": "A", "slug": "a", "scope": "project", "permissions": ["vm.fly"]}),
            "not in the catalog",
        ),
        (
            json!({"name": "A", "slug": "a", "scope": "account", "permissions": ["vm.view"]}),
            "has scope project",
        ),
    ] {
        assert!(post(body.clone()).error(400).contains(why), "{body}");
    }
    post(json!({"name": "A"})).error(400);
    let owner = role_id(&s, "owner");
    let patch = |id: &str, body: Value| {
        s.admin_call("PATCH", &format!("/api/v1/roles/{id}"))
            .json(body)
    };
    assert!(patch(&owner, json!({"name": "Boss"}))
        .error(400)
        .contains("system roles"));
    assert!(s
        .admin_call("DELETE", &format!("/api/v1/roles/{owner}"))
        .send()
        .error(400)
        .contains("system roles"));
    assert!(patch(&ops, json!({})).error(400).contains("give name"));
    assert!(patch(&ops, json!({"permissions": ["account.roles.view"]}))
        .error(400)
        .contains("has scope account"));
    patch("6f1c1c52-0000-4000-8000-000000000001", json!({"name": "x"})).error(404);
    assert_eq!(roles(&s), before, "a refusal changed the roles");

    // Another account sees none of them and cannot touch them.
    s.kill();
    let other = s.create_account("other");
    s.spawn();
    let r = s
        .call("GET", &format!("/api/v1/roles/{ops}"))
        .key(&other.api_key)
        .send();
    assert_eq!(r.status, 404);
    let r = s
        .call("DELETE", &format!("/api/v1/roles/{ops}"))
        .key(&other.api_key)
        .send();
    assert_eq!(r.status, 404);
    let theirs = s.call("GET", "/api/v1/roles").key(&other.api_key).send();
    assert!(!theirs.text.contains(&ops));
    let r = s
        .call("POST", "/api/v1/api-keys")
        .key(&other.api_key)
        .json(json!({"name": "k", "role_id": ops}));
    assert_eq!(r.status, 400, "another account's role: {}", r.text);
    assert_eq!(roles(&s), before);
}

#[test]
fn no_key_grants_more_than_it_holds() {
    let s = Server::start(RELAXED);
    // A key manager: may manage roles and keys, may not delete projects.
    let manager_perms = json!([
        "account.roles.view",
        "account.roles.create",
        "account.roles.manage",
        "account.apikeys.view",
        "account.apikeys.create",
        "account.apikeys.manage",
        "account.apikeys.revoke",
        "account.projects.view"
    ]);
    let r = s.admin_call("POST", "/api/v1/roles").json(json!({
        "name": "Key manager", "slug": "key-manager", "scope": "account",
        "permissions": manager_perms}));
    assert_eq!(r.status, 201, "{}", r.text);
    let manager = r.body["data"]["id"].as_str().unwrap().to_string();
    let r = s.admin_call("POST", "/api/v1/roles").json(json!({
        "name": "Project remover", "slug": "remover", "scope": "account",
        "permissions": ["account.projects.view", "account.projects.delete"]}));
    assert_eq!(r.status, 201, "{}", r.text);
    let remover = r.body["data"]["id"].as_str().unwrap().to_string();
    let (_, m) = key_with(&s, &s.admin.api_key, &manager);
    let before = roles(&s);
    let as_m = |method: &str, path: &str| s.call(method, path).key(&m);

    // Roles: nothing beyond its own set, not even by editing its own role or one
    // above it.
    for perms in [
        json!(["account.projects.delete"]),
        json!(["account.roles.delete"]),
    ] {
        let r = as_m("POST", "/api/v1/roles").json(json!({
            "name": "Up", "slug": "up", "scope": "account", "permissions": perms}));
        assert_eq!(r.status, 403, "{}", r.text);
    }
    let r = as_m("POST", "/api/v1/roles").json(json!({
        "name": "Up", "slug": "up", "scope": "project", "permissions": ["vm.delete"]}));
    assert_eq!(r.status, 403, "project rights it lacks: {}", r.text);
    let r = as_m("PATCH", &format!("/api/v1/roles/{manager}"))
        .json(json!({"permissions": ["account.roles.view", "account.projects.delete"]}));
    assert_eq!(r.status, 403, "{}", r.text);
    let r = as_m("PATCH", &format!("/api/v1/roles/{remover}")).json(json!({"name": "Mine now"}));
    assert_eq!(r.status, 403, "a role above it: {}", r.text);
    assert_eq!(roles(&s), before, "a refusal changed the roles");

    // Keys: no role above its own; no change to, revocation or read-out of a key
    // above it.
    for role in [role_id(&s, "admin"), remover.clone()] {
        let r = as_m("POST", "/api/v1/api-keys").json(json!({"name": "up", "role_id": role}));
        assert_eq!(r.status, 403, "{}", r.text);
    }
    // Keys as listed, without the use stamp (the calls themselves move it).
    let listed = || {
        let r = s.admin_call("GET", "/api/v1/api-keys").send();
        assert_eq!(r.status, 200, "{}", r.text);
        let mut d = r.body["data"].clone();
        for k in d.as_array_mut().unwrap() {
            k.as_object_mut().unwrap().remove("last_used_at");
        }
        d
    };
    let keys = listed();
    let admin_key = s.admin.api_key_id.clone();
    for (method, path, body) in [
        (
            "POST",
            format!("/api/v1/api-keys/{admin_key}/regenerate"),
            Value::Null,
        ),
        (
            "DELETE",
            format!("/api/v1/api-keys/{admin_key}"),
            Value::Null,
        ),
        (
            "PATCH",
            format!("/api/v1/api-keys/{admin_key}"),
            json!({"is_active": false}),
        ),
    ] {
        let c = as_m(method, &path);
        let r = if body.is_null() {
            c.send()
        } else {
            c.json(body)
        };
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text);
    }
    assert_eq!(listed(), keys, "a refusal changed the keys");

    // What it holds it may pass on, and manage.
    let r = as_m("POST", "/api/v1/roles").json(json!({
        "name": "Viewer of keys", "slug": "key-viewer", "scope": "account",
        "permissions": ["account.apikeys.view"]}));
    assert_eq!(r.status, 201, "{}", r.text);
    let (peer, _) = key_with(&s, &m, &manager);
    let r = as_m("POST", &format!("/api/v1/api-keys/{peer}/regenerate")).send();
    assert_eq!(r.status, 200, "{}", r.text);
}
