//! SSH keys through the API.

mod common;
use common::*;
use serde_json::json;

#[test]
fn ssh_key_crud_with_parsed_type_and_fingerprint() {
    let s = Server::start(RELAXED);
    let r = s.admin_call("POST", "/api/v1/ssh-keys").json(json!({
        "name": "laptop", "public_key": format!("  {ED25519}\n")
    }));
    assert_eq!(r.status, 201, "{}", r.text);
    let k = r.body["data"].clone();
    assert_eq!(k["key_type"], "ssh-ed25519");
    assert_eq!(k["public_key"], ED25519);
    assert_eq!(k["fingerprint"], ED25519_FP);
    let id = k["id"].as_str().unwrap().to_string();

    let m = s
        .admin_call("POST", "/api/v1/ssh-keys")
        .json(json!({"name": "again", "public_key": ED25519}))
        .error(409);
    assert!(m.contains(ED25519_FP), "{m}");

    let r = s.admin_call("GET", "/api/v1/ssh-keys").send();
    assert_eq!(r.status, 200);
    assert!(
        r.body.get("total").is_none(),
        "the contract's SSH key list has no total"
    );
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);

    let r = s
        .admin_call("PUT", &format!("/api/v1/ssh-keys/{id}"))
        .json(json!({"name": "desk"}));
    assert_eq!(
        (r.status, r.body["data"]["name"].clone()),
        (200, json!("desk"))
    );
    assert_eq!(
        r.body["data"]["public_key"], ED25519,
        "the key itself never changes"
    );

    let r = s
        .admin_call("DELETE", &format!("/api/v1/ssh-keys/{id}"))
        .send();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["data"]["id"],
        id.as_str(),
        "delete returns the deleted key"
    );
    s.admin_call("GET", &format!("/api/v1/ssh-keys/{id}"))
        .send()
        .error(404);
    // Once deleted, the same key may be added again.
    let r = s
        .admin_call("POST", "/api/v1/ssh-keys")
        .json(json!({"name": "laptop", "public_key": ED25519}));
    assert_eq!(r.status, 201);
}

#[test]
fn garbage_keys_are_refused() {
    let s = Server::start(RELAXED);
    let body = ED25519.split(' ').nth(1).unwrap();
    for (bad, why) in [
        ("hello world", "unsupported key type"),
        ("ssh-ed25519", "must look like"),
        ("ssh-ed25519 AAAA!!!!", "base64"),
        (
            &format!("ssh-rsa {body}") as &str,
            "not a valid ssh-rsa key",
        ),
        ("ssh-dss AAAAB3NzaC1kc3M=", "unsupported key type"),
        (
            &format!("ssh-ed25519 {}", &body[..body.len() - 4]) as &str,
            "",
        ),
    ] {
        let m = s
            .admin_call("POST", "/api/v1/ssh-keys")
            .json(json!({"name": "k", "public_key": bad}))
            .error(400);
        assert!(m.contains(why), "{bad:?}: {m}");
    }
    s.admin_call("POST", "/api/v1/ssh-keys")
        .json(json!({"name": "", "public_key": ED25519}))
        .error(400);
    s.admin_call("POST", "/api/v1/ssh-keys")
        .json(json!({"name": "k"}))
        .error(400);
    let r = s.admin_call("GET", "/api/v1/ssh-keys").send();
    assert_eq!(r.body["data"], json!([]), "nothing was stored");
}

#[test]
fn ssh_keys_belong_to_one_account() {
    let mut s = Server::start(RELAXED);
    s.kill();
    let b = s.create_account("tenant-b");
    s.spawn();
    let r = s
        .admin_call("POST", "/api/v1/ssh-keys")
        .json(json!({"name": "a", "public_key": ED25519}));
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    // B cannot see, rename or delete A's key, and may add the same public key itself.
    s.call("GET", &format!("/api/v1/ssh-keys/{id}"))
        .key(&b.api_key)
        .send()
        .error(404);
    s.call("PUT", &format!("/api/v1/ssh-keys/{id}"))
        .key(&b.api_key)
        .json(json!({"name": "x"}))
        .error(404);
    s.call("DELETE", &format!("/api/v1/ssh-keys/{id}"))
        .key(&b.api_key)
        .send()
        .error(404);
    assert_eq!(
        s.call("GET", "/api/v1/ssh-keys")
            .key(&b.api_key)
            .send()
            .body["data"],
        json!([])
    );
    let r = s
        .call("POST", "/api/v1/ssh-keys")
        .key(&b.api_key)
        .json(json!({"name": "b", "public_key": ED25519}));
    assert_eq!(r.status, 201);
    assert_eq!(
        s.admin_call("GET", &format!("/api/v1/ssh-keys/{id}"))
            .send()
            .body["data"]["name"],
        "a"
    );
}
