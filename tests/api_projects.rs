//! Projects through the API: CRUD, pagination, validation and isolation.

mod common;
use common::*;
use serde_json::json;

#[test]
fn project_crud_round_trip() {
    let s = Server::start(RELAXED);
    let r = s.admin_call("POST", "/api/v1/projects").json(json!({
        "name": "Web Shop", "description": "prod", "default_region": "us-east"
    }));
    assert_eq!(r.status, 201, "{}", r.text);
    let p = r.body["data"].clone();
    assert_eq!(p["name"], "Web Shop");
    assert_eq!(p["slug"], "web-shop");
    assert_eq!(p["is_default"], false);
    assert_eq!(p["is_active"], true);
    assert_eq!(p["account_id"], s.admin.account_id.as_str());
    let id = p["id"].as_str().unwrap().to_string();

    // Same name again: a distinct slug.
    let r2 = s
        .admin_call("POST", "/api/v1/projects")
        .json(json!({"name": "Web Shop"}));
    assert_eq!(r2.body["data"]["slug"], "web-shop-2");

    let r = s
        .admin_call("GET", &format!("/api/v1/projects/{id}"))
        .send();
    assert_eq!(
        (r.status, r.body["data"]["description"].clone()),
        (200, json!("prod"))
    );

    let r = s
        .admin_call("PUT", &format!("/api/v1/projects/{id}"))
        .json(json!({"name": "Shop"}));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["name"], "Shop");
    assert_eq!(r.body["data"]["description"], "prod", "unnamed fields stay");
    assert!(r.body["data"]["updated_at"].as_str() > p["updated_at"].as_str());

    let r = s
        .admin_call("DELETE", &format!("/api/v1/projects/{id}"))
        .send();
    assert_eq!((r.status, r.body["success"].clone()), (200, json!(true)));
    s.admin_call("GET", &format!("/api/v1/projects/{id}"))
        .send()
        .error(404);
    s.admin_call("DELETE", &format!("/api/v1/projects/{id}"))
        .send()
        .error(404);

    // The default project stays.
    let m = s
        .admin_call(
            "DELETE",
            &format!("/api/v1/projects/{}", s.admin.project_id),
        )
        .send()
        .error(409);
    assert!(m.contains("default project"), "{m}");
}

#[test]
fn pagination_reports_total_and_clamps() {
    let s = Server::start(RELAXED);
    for i in 0..24 {
        let r = s
            .admin_call("POST", "/api/v1/projects")
            .json(json!({"name": format!("p{i:02}")}));
        assert_eq!(r.status, 201);
    }
    let page = |q: &str| s.admin_call("GET", &format!("/api/v1/projects{q}")).send();
    let r = page("");
    assert_eq!(r.body["total"], 25);
    assert_eq!(
        r.body["data"].as_array().unwrap().len(),
        20,
        "default limit is 20"
    );
    let r = page("?limit=10&offset=20");
    let names: Vec<_> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(
        names,
        [
            json!("p19"),
            json!("p20"),
            json!("p21"),
            json!("p22"),
            json!("p23")
        ]
    );
    assert_eq!(page("?offset=1000").body["data"], json!([]));
    assert_eq!(page("?limit=-3").body["data"].as_array().unwrap().len(), 20);
    page("?limit=lots").error(400);
}

#[test]
fn bad_project_input_is_refused_and_changes_nothing() {
    let s = Server::start(RELAXED);
    let post = |b: serde_json::Value| s.admin_call("POST", "/api/v1/projects").json(b);
    assert!(post(json!({})).error(400).contains("name"));
    assert!(post(json!({"name": ""})).error(400).contains("1 to 64"));
    post(json!({"name": "x".repeat(65)})).error(400);
    post(json!({"name": 42})).error(400);
    post(json!({"name": "ok", "default_region": "mars"})).error(400);
    post(json!({"name": "ok", "description": "d".repeat(5000)})).error(400);
    post(json!(["not", "an", "object"])).error(400);
    let r = s.admin_call("GET", "/api/v1/projects").send();
    assert_eq!(r.body["total"], 1, "nothing was created");

    let id = &s.admin.project_id;
    s.admin_call("PUT", &format!("/api/v1/projects/{id}"))
        .json(json!({"name": ""}))
        .error(400);
    s.admin_call("PUT", "/api/v1/projects/not-a-uuid")
        .json(json!({"name": "a"}))
        .error(404);
    s.admin_call("PUT", &format!("/api/v1/projects/{}", uuid_like()))
        .json(json!({"name": "a"}))
        .error(404);
    let r = s
        .admin_call("GET", &format!("/api/v1/projects/{id}"))
        .send();
    assert_eq!(r.body["data"]["name"], "default");
}

fn uuid_like() -> &'static str {
    "6f1c1c52-0000-4000-8000-000000000001"
}

#[test]
fn accounts_and_roles_are_isolated() {
    let mut s = Server::start(RELAXED);
    s.kill();
    let other = s.create_account("tenant-b");
    s.spawn();
    // Account B sees only its own default project, and nothing of A's.
    let r = s.call("GET", "/api/v1/projects").key(&other.api_key).send();
    assert_eq!(r.body["total"], 1);
    assert_eq!(r.body["data"][0]["id"], other.project_id.as_str());
    let a_project = &s.admin.project_id;
    s.call("GET", &format!("/api/v1/projects/{a_project}"))
        .key(&other.api_key)
        .send()
        .error(404);
    s.call("PUT", &format!("/api/v1/projects/{a_project}"))
        .key(&other.api_key)
        .json(json!({"name": "mine now"}))
        .error(404);
    s.call("DELETE", &format!("/api/v1/projects/{a_project}"))
        .key(&other.api_key)
        .send()
        .error(404);
    // X-Project-ID of another account's project is refused too.
    s.call("GET", "/api/skiff/v1/jobs")
        .key(&other.api_key)
        .project(a_project)
        .send()
        .error(404);

    // A Member key (the default role) may list but not create, and sees no project it
    // was not granted.
    let r = s
        .admin_call("POST", "/api/v1/api-keys")
        .json(json!({"name": "ci"}));
    assert_eq!(r.status, 201);
    assert_eq!(r.body["data"]["role_slug"], "member");
    let member = r.body["data"]["secret"].as_str().unwrap().to_string();
    let r = s.call("GET", "/api/v1/projects").key(&member).send();
    assert_eq!((r.status, r.body["total"].clone()), (200, json!(0)));
    let m = s
        .call("POST", "/api/v1/projects")
        .key(&member)
        .json(json!({"name": "x"}))
        .error(403);
    assert!(m.contains("account.projects.create"), "{m}");
    s.call("GET", &format!("/api/v1/projects/{a_project}"))
        .key(&member)
        .send()
        .error(404);
    s.call("GET", "/api/skiff/v1/jobs")
        .key(&member)
        .project(a_project)
        .send()
        .error(404);
    // Nor may it mint keys.
    let m = s
        .call("POST", "/api/v1/api-keys")
        .key(&member)
        .json(json!({"name": "x"}))
        .error(403);
    assert!(m.contains("account.apikeys.create"), "{m}");
}

#[test]
fn contract_rules_on_project_headers_nulls_denials_and_deletes() {
    let s = Server::start(RELAXED);
    let p = s.admin.project_id.clone();
    let r = s
        .admin_call("POST", "/api/v1/projects")
        .json(json!({"name": "holder"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let q = r.body["data"]["id"].as_str().unwrap().to_string();

    // `null` is not "unset": refused, nothing created or changed.
    let m = s
        .admin_call("POST", "/api/v1/projects")
        .json(json!({"name": "n", "default_region": null}))
        .error(400);
    assert!(m.contains("null"), "{m}");
    s.admin_call("PUT", &format!("/api/v1/projects/{q}"))
        .json(json!({"name": "renamed", "description": null}))
        .error(400);
    let r = s.admin_call("GET", &format!("/api/v1/projects/{q}")).send();
    assert_eq!(r.body["data"]["name"], "holder");

    // A group in the new project: its get, update and delete need the header, and
    // the header must name the group's project.
    let r = s
        .admin_call("POST", "/api/v1/security-groups")
        .project(&q)
        .json(json!({"name": "g", "template_id": "ssh"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let g = r.body["data"]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/security-groups/{g}");
    let m = s.admin_call("GET", &path).send().error(400);
    assert!(m.contains("X-Project-ID required"), "{m}");
    s.admin_call("GET", &path).project(&p).send().error(404);
    s.admin_call("GET", &path)
        .header("X-Project-ID", "")
        .send()
        .error(400);
    assert_eq!(s.admin_call("GET", &path).project(&q).send().status, 200);
    s.admin_call("DELETE", &path).send().error(400);
    s.admin_call("DELETE", &path).project(&p).send().error(404);

    // The project holds the group: not deleted, and it says why.
    let m = s
        .admin_call("DELETE", &format!("/api/v1/projects/{q}"))
        .send()
        .error(409);
    assert!(m.contains("1 security groups"), "{m}");
    assert_eq!(s.admin_call("GET", &path).project(&q).send().status, 200);
    assert_eq!(s.admin_call("DELETE", &path).project(&q).send().status, 200);
    assert_eq!(
        s.admin_call("DELETE", &format!("/api/v1/projects/{q}"))
            .send()
            .status,
        200
    );

    // Deleting VMs: a volume action that means nothing is refused before the VM is
    // looked for; a valid body for a VM that does not exist is 404.
    let vm = "6f1c1c52-0000-4000-8000-00000000beef";
    s.admin_call("DELETE", &format!("/api/v1/vms/{vm}"))
        .project(&p)
        .json(json!({"volume_action": "shred"}))
        .error(400);
    s.admin_call("DELETE", &format!("/api/v1/vms/{vm}"))
        .project(&p)
        .json(json!({"delete_vpc": true}))
        .error(404);
    let m = s
        .admin_call("DELETE", "/api/v1/vms/bulk")
        .project(&p)
        .json(json!({"ids": [vm], "volume_action": "shred"}))
        .error(400);
    assert!(m.contains("detach or delete"), "{m}");

    // A permission denial carries the contract's 403 body, with a reason.
    let r = s
        .admin_call("POST", "/api/v1/api-keys")
        .json(json!({"name": "viewer"}));
    let member = r.body["data"]["secret"].as_str().unwrap().to_string();
    let r = s
        .call("POST", "/api/v1/projects")
        .key(&member)
        .json(json!({"name": "x"}));
    r.error(403);
    assert_eq!(r.body["reason"], "forbidden", "{}", r.text);
}
