//! Members, project members and invitations: an invitation becomes a user who holds
//! exactly what it carried; no member, key or invitation gives more than its giver
//! holds; a suspension, demotion or removal reaches the member's sessions and keys at
//! once; and nothing of one account is visible from another (404).

mod common;
use common::web::Browser;
use common::*;
use serde_json::{json, Value};

fn role_id(s: &Server, slug: &str) -> String {
    let r = s.admin_call("GET", "/api/v1/roles?limit=200").send();
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

/// Accepts the invitation at `url` in `b` with `password`; returns the answer.
fn accept(b: &mut Browser, url: &str, password: &str) -> common::web::Page {
    let path = &url[url.find("/ui/invite/").expect("an accept link")..];
    let t = b.csrf(path);
    b.post(
        path,
        &[
            ("csrf", &t),
            ("password", password),
            ("password2", password),
        ],
    )
}

/// A key with `role` made by the signed-in user of `b` through the dashboard (which
/// offers that role); its secret.
fn dashboard_key(b: &mut Browser, role: &str) -> String {
    let t = b.csrf("/ui/api-keys");
    let form = b.get("/ui/api-keys").body;
    assert!(
        form.contains(&format!("<option value=\"{role}\" selected>")),
        "the user's own role is offered first: {form}"
    );
    let p = b.post(
        "/ui/api-keys",
        &[("csrf", &t), ("name", "mine"), ("role_id", role)],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    let page = b.get("/ui/api-keys");
    let at = page
        .body
        .find("id=\"new-secret\">")
        .expect("the secret, once")
        + 16;
    page.body[at..at + 69].to_string()
}

fn members(s: &Server) -> Vec<Value> {
    let r = s.admin_call("GET", "/api/v1/members").send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["total"], r.body["data"].as_array().unwrap().len());
    r.body["data"].as_array().unwrap().clone()
}

#[test]
fn a_project_invitation_makes_a_user_of_that_project_alone() {
    let s = Server::start(RELAXED);
    let p1 = s.admin.project_id.clone();
    let r = s
        .admin_call("POST", "/api/v1/projects")
        .json(json!({"name": "other-project"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let p2 = r.body["data"]["id"].as_str().unwrap().to_string();
    let operator = role_id(&s, "operator");

    // An account role cannot be given in a project, and the owner role never.
    for (role, why) in [
        (role_id(&s, "member"), "scope"),
        (role_id(&s, "owner"), "owner"),
    ] {
        let r = s
            .admin_call("POST", &format!("/api/v1/projects/{p1}/invitations"))
            .json(json!({"email": "ann@example.org", "role_id": role}));
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.text.contains(why), "{}", r.text);
    }
    for bad in ["ann", "ann@", "a b@example.org", ""] {
        let r = s
            .admin_call("POST", &format!("/api/v1/projects/{p1}/invitations"))
            .json(json!({"email": bad, "role_id": operator}));
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    let r = s
        .admin_call("POST", &format!("/api/v1/projects/{p1}/invitations"))
        .json(json!({"email": "Ann@Example.org", "role_id": operator}));
    assert_eq!(r.status, 201, "{}", r.text);
    let inv = r.body["data"].clone();
    assert_eq!(inv["type"], "project");
    assert_eq!(inv["email"], "ann@example.org");
    assert_eq!(inv["project_id"], p1.as_str());
    assert_eq!(inv["role_name"], "Operator");
    let url = inv["invitation_url"].as_str().unwrap().to_string();
    assert!(url.contains("/ui/invite/inv_"), "{url}");
    assert!(!r.text.contains("token_sha256"));
    // The same email twice is refused; the link is not in any listing.
    let r = s
        .admin_call("POST", &format!("/api/v1/projects/{p1}/invitations"))
        .json(json!({"email": "ann@example.org", "role_id": operator}));
    assert_eq!(r.status, 400, "{}", r.text);
    let r = s
        .admin_call("GET", &format!("/api/v1/projects/{p1}/members"))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let pending = &r.body["data"][0];
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["user_id"], Value::Null);
    assert_eq!(pending["invitation_id"], inv["id"]);
    assert!(!r.text.contains("/ui/invite/"));
    assert_eq!(
        members(&s).len(),
        1,
        "a project invitation is no account member"
    );

    let mut ann = Browser::new(&s.base);
    let path = &url[url.find("/ui/invite/").unwrap()..];
    let page = ann.get(path);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("ann@example.org") && page.body.contains("Operator"));
    let t = ann.csrf(path);
    let p = ann.post(
        path,
        &[
            ("csrf", &t),
            ("password", "a-long-password-1"),
            ("password2", "a-long-password-2"),
        ],
    );
    assert_eq!(p.status, 400, "differing passwords: {}", p.body);
    let p = accept(&mut ann, &url, "short");
    assert_eq!(p.status, 400, "a short password: {}", p.body);
    let p = accept(&mut ann, &url, "a-long-password-1");
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location, "/ui/");
    // The link works once.
    assert_eq!(Browser::new(&s.base).get(path).status, 400);

    let home = ann.get("/ui/");
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(
        !home.body.contains("other-project"),
        "ann sees only her project"
    );
    assert!(!home.body.contains("/ui/roles\""), "no owner page offered");
    for owner_page in ["/ui/roles", "/ui/members", "/ui/api-keys"] {
        let p = ann.get(owner_page);
        assert_eq!(p.status, 403, "{owner_page}: {}", p.body);
    }
    let page = ann.get("/ui/vms");
    assert_eq!(page.status, 200, "{}", page.body);
    // The create form opens without the account's SSH-key list (not hers to read).
    let page = ann.get("/ui/vms/new");
    assert_eq!(page.status, 200, "{}", page.body);

    let r = s
        .admin_call("GET", &format!("/api/v1/projects/{p1}/members"))
        .send();
    let m = r.body["data"][0].clone();
    assert_eq!(m["status"], "active");
    assert!(m["user_id"].is_string());
    let mid = m["id"].as_str().unwrap().to_string();
    // Her project role changes; a role of the account scope cannot be given here.
    let r = s
        .admin_call("PATCH", &format!("/api/v1/projects/{p1}/members/{mid}"))
        .json(json!({"role_id": role_id(&s, "admin")}));
    assert_eq!(r.status, 400, "{}", r.text);
    let r = s
        .admin_call("PATCH", &format!("/api/v1/projects/{p1}/members/{mid}"))
        .json(json!({"role_id": role_id(&s, "viewer")}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["role"], "viewer");
    // Not reachable through the other project.
    let r = s
        .admin_call("GET", &format!("/api/v1/projects/{p2}/members/{mid}"))
        .send();
    assert_eq!(r.status, 404, "{}", r.text);
    // Removed from the project, she can see nothing: her next page is refused.
    let r = s
        .admin_call("DELETE", &format!("/api/v1/projects/{p1}/members/{mid}"))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let p = ann.get("/ui/vms");
    assert_eq!(p.status, 403, "{}", p.body);
}

#[test]
fn no_member_key_or_invitation_gives_more_than_its_giver_holds() {
    let mut s = Server::start(RELAXED);
    s.kill();
    let other = s.create_account("elsewhere");
    s.spawn();
    let s = s;
    let r = s.admin_call("POST", "/api/v1/roles").json(json!({
        "name": "People", "slug": "people", "scope": "account",
        "permissions": ["account.projects.view", "account.members.view",
            "account.members.invite", "account.members.manage", "account.members.remove",
            "account.apikeys.view", "account.apikeys.create", "account.roles.view"]}));
    assert_eq!(r.status, 201, "{}", r.text);
    let people = r.body["data"]["id"].as_str().unwrap().to_string();
    let admin = role_id(&s, "admin");
    let member = role_id(&s, "member");

    // Exactly one of email, target_user_id and api_key_id.
    for body in [
        json!({"role_id": people}),
        json!({"role_id": people, "email": "x@example.org", "target_user_id": people}),
        json!({"role_id": people, "api_key_id": s.admin.api_key_id}),
    ] {
        let r = s.admin_call("POST", "/api/v1/members").json(body.clone());
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }
    let r = s
        .admin_call("POST", "/api/v1/members")
        .json(json!({"email": "bob@example.org", "role_id": people}));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["data"]["status"], "pending");
    let url = r.body["data"]["invitation_url"]
        .as_str()
        .unwrap()
        .to_string();
    let mut bob = Browser::new(&s.base);
    assert_eq!(accept(&mut bob, &url, "bobs-password-9").status, 303);
    let bob_key = dashboard_key(&mut bob, &people);
    let all = members(&s);
    let owner = all.iter().find(|m| m["role"] == "owner").unwrap().clone();
    let bob_m = all
        .iter()
        .find(|m| m["email"] == "bob@example.org")
        .unwrap()
        .clone();
    assert_eq!(bob_m["status"], "active");
    assert_eq!(bob_m["role_name"], "People");
    let bob_id = bob_m["id"].as_str().unwrap().to_string();
    let owner_id = owner["id"].as_str().unwrap().to_string();
    let as_bob = |m: &str, p: &str| s.call(m, p).key(&bob_key);

    let before = members(&s);
    // Bob holds members.* but no roles.*: no role above his own for anyone.
    let r = as_bob("PATCH", &format!("/api/v1/members/{bob_id}")).json(json!({"role_id": admin}));
    assert_eq!(r.status, 403, "{}", r.text);
    let r = as_bob("POST", "/api/v1/invitations")
        .json(json!({"email": "c@example.org", "role_id": admin}));
    assert_eq!(r.status, 403, "{}", r.text);
    // Member holds views Bob lacks (SSH keys, billing): above him too.
    let r = as_bob("POST", "/api/v1/members")
        .json(json!({"email": "c@example.org", "role_id": member}));
    assert_eq!(r.status, 403, "{}", r.text);
    let r = as_bob("POST", "/api/v1/roles").json(json!({"name": "x", "slug": "x",
        "scope": "account", "permissions": ["account.projects.view"]}));
    assert_eq!(r.status, 403, "{}", r.text);
    let r = as_bob("POST", "/api/v1/api-keys").json(json!({"name": "up", "role_id": admin}));
    assert!(r.status == 403 || r.status == 400, "{}", r.text);
    // The owner cannot be changed or removed, not even by the owner's own key.
    let r = as_bob("PATCH", &format!("/api/v1/members/{owner_id}"))
        .json(json!({"status": "suspended"}));
    assert!(r.status == 400 || r.status == 403, "{}", r.text);
    let r = s
        .admin_call("DELETE", &format!("/api/v1/members/{owner_id}"))
        .send();
    assert_eq!(r.status, 400, "{}", r.text);
    // Nor can a project be reached: Bob's role has no project.
    let r = as_bob("GET", &format!("/api/v1/projects/{}", s.admin.project_id)).send();
    assert_eq!(r.status, 404, "{}", r.text);
    let r = as_bob("GET", "/api/v1/vms")
        .project(&s.admin.project_id)
        .send();
    assert_eq!(r.body["data"], json!([]), "{}", r.text);
    assert_eq!(members(&s), before, "refusals changed nothing");

    // An invitation at his own level is his to give.
    let r = as_bob("POST", "/api/v1/invitations")
        .json(json!({"email": "carol@example.org", "role_id": people}));
    assert_eq!(r.status, 201, "{}", r.text);
    let carol_inv = r.body["data"]["id"].as_str().unwrap().to_string();

    // Suspended, his key and his session stop at once; active again, both work.
    let r = s
        .admin_call("PATCH", &format!("/api/v1/members/{bob_id}"))
        .json(json!({"status": "suspended"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(as_bob("GET", "/api/v1/members").send().status, 401);
    assert_eq!(bob.get("/ui/").status, 303);
    let r = s
        .admin_call("PATCH", &format!("/api/v1/members/{bob_id}"))
        .json(json!({"status": "active"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(as_bob("GET", "/api/v1/members").send().status, 200);
    // Demoted, his key (made as People) holds only what Member holds now.
    let r = s
        .admin_call("PATCH", &format!("/api/v1/members/{bob_id}"))
        .json(json!({"role_id": member}));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = as_bob("POST", "/api/v1/invitations")
        .json(json!({"email": "dan@example.org", "role_id": people}));
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(as_bob("GET", "/api/v1/members").send().status, 200);

    // The role is in use until the last holder and invitation let go of it.
    let r = s
        .admin_call("DELETE", &format!("/api/v1/roles/{people}"))
        .send();
    assert_eq!(r.status, 400, "{}", r.text);

    // Another account sees none of it.
    let as_other = |m: &str, p: &str| s.call(m, p).key(&other.api_key);
    assert_eq!(
        as_other("GET", &format!("/api/v1/members/{bob_id}"))
            .send()
            .status,
        404
    );
    assert_eq!(
        as_other("DELETE", &format!("/api/v1/members/{bob_id}"))
            .send()
            .status,
        404
    );
    assert_eq!(
        as_other("DELETE", &format!("/api/v1/invitations/{carol_inv}"))
            .send()
            .status,
        404
    );
    let r = as_other(
        "POST",
        &format!("/api/v1/projects/{}/members", s.admin.project_id),
    )
    .json(json!({"api_key_id": other.api_key_id, "role_id": role_id(&s, "viewer")}));
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(members(&s).len(), 3);

    // Removed, Bob's keys and session end; the invitation he made stays the account's.
    let r = s
        .admin_call("DELETE", &format!("/api/v1/members/{bob_id}"))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(as_bob("GET", "/api/v1/members").send().status, 401);
    assert_eq!(bob.get("/ui/").status, 303);
    assert_eq!(
        s.admin_call("GET", &format!("/api/v1/members/{bob_id}"))
            .send()
            .status,
        404
    );
    let r = s
        .admin_call("DELETE", &format!("/api/v1/invitations/{carol_inv}"))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        s.admin_call("DELETE", &format!("/api/v1/invitations/{carol_inv}"))
            .send()
            .status,
        404
    );
    let r = s
        .admin_call("DELETE", &format!("/api/v1/roles/{people}"))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(members(&s).len(), 1);
}

#[test]
fn a_key_granted_one_project_sees_that_project_alone() {
    let s = Server::start(RELAXED);
    let p1 = s.admin.project_id.clone();
    let r = s
        .admin_call("POST", "/api/v1/projects")
        .json(json!({"name": "p2"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let p2 = r.body["data"]["id"].as_str().unwrap().to_string();
    let r = s
        .admin_call("POST", "/api/v1/api-keys")
        .json(json!({"name": "scoped", "role_id": role_id(&s, "member")}));
    assert_eq!(r.status, 201, "{}", r.text);
    let kid = r.body["data"]["id"].as_str().unwrap().to_string();
    let secret = r.body["data"]["secret"].as_str().unwrap().to_string();
    let k = |m: &str, p: &str, project: &str| s.call(m, p).key(&secret).project(project).send();
    let sg = |project: &str| {
        let r = s
            .admin_call("POST", "/api/v1/security-groups")
            .project(project)
            .json(json!({"name": "g"}));
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["data"]["id"].as_str().unwrap().to_string()
    };
    let (g1, g2) = (sg(&p1), sg(&p2));
    let sees = |project: &str, g: &str| {
        (
            k("GET", &format!("/api/v1/projects/{project}"), project).status,
            k("GET", &format!("/api/v1/security-groups/{g}"), project).status,
        )
    };
    assert_eq!(sees(&p1, &g1), (404, 403), "no project yet");

    let r = s
        .admin_call("POST", &format!("/api/v1/projects/{p1}/members"))
        .json(json!({"api_key_id": kid, "role_id": role_id(&s, "operator")}));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["data"]["api_key_id"], kid.as_str());
    assert_eq!(r.body["data"]["role"], "operator");
    let mid = r.body["data"]["id"].as_str().unwrap().to_string();
    let again = s
        .admin_call("POST", &format!("/api/v1/projects/{p1}/members"))
        .json(json!({"api_key_id": kid, "role_id": role_id(&s, "viewer")}));
    assert_eq!(again.status, 400, "{}", again.text);
    let key = s
        .admin_call("GET", &format!("/api/v1/api-keys/{kid}"))
        .send();
    assert_eq!(
        key.body["data"]["project_accesses"][0]["project_id"],
        p1.as_str()
    );
    assert_eq!(
        key.body["data"]["project_accesses"][0]["role_slug"],
        "operator"
    );
    assert_eq!(sees(&p1, &g1), (200, 200));
    assert_eq!(sees(&p2, &g2), (404, 404), "the other project is not there");
    assert_eq!(k("GET", "/api/v1/vms", &p2).body["data"], json!([]));
    let listed = s.call("GET", "/api/v1/projects").key(&secret).send();
    assert_eq!(listed.status, 200, "{}", listed.text);
    let ids: Vec<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![p1.as_str()]);
    // An operator may not hand out project roles.
    let r = s
        .call("POST", &format!("/api/v1/projects/{p1}/members"))
        .key(&secret)
        .json(json!({"api_key_id": s.admin.api_key_id, "role_id": role_id(&s, "viewer")}));
    assert_eq!(r.status, 403, "{}", r.text);

    let r = s
        .admin_call("PATCH", &format!("/api/v1/projects/{p1}/members/{mid}"))
        .json(json!({"role_id": role_id(&s, "viewer")}));
    assert_eq!(r.status, 200, "{}", r.text);
    let got = s
        .admin_call("GET", &format!("/api/v1/projects/{p1}/members/{mid}"))
        .send();
    assert_eq!(got.body["data"]["role"], "viewer");
    let r = s
        .admin_call("DELETE", &format!("/api/v1/projects/{p1}/members/{mid}"))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sees(&p1, &g1), (404, 403), "no project any more");
    let key = s
        .admin_call("GET", &format!("/api/v1/api-keys/{kid}"))
        .send();
    assert_eq!(key.body["data"]["project_accesses"], json!([]));
}

#[test]
fn an_expired_or_cancelled_invitation_admits_no_one() {
    let mut s = Server::start(RELAXED);
    let role = role_id(&s, "viewer");
    let invite = |s: &Server, email: &str| {
        let r = s
            .admin_call(
                "POST",
                &format!("/api/v1/projects/{}/invitations", s.admin.project_id),
            )
            .json(json!({"email": email, "role_id": role}));
        assert_eq!(r.status, 201, "{}", r.text);
        (
            r.body["data"]["id"].as_str().unwrap().to_string(),
            r.body["data"]["invitation_url"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    };
    let (_, late) = invite(&s, "late@example.org");
    let (cancelled_id, cancelled) = invite(&s, "gone@example.org");
    let r = s
        .admin_call("DELETE", &format!("/api/v1/invitations/{cancelled_id}"))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);

    // A week passes for the first one: its expiry is moved into the past.
    s.kill();
    {
        let store = skiff::store::Store::open(&s.data().join("db")).unwrap();
        let members = store.table::<skiff::model::Member>().unwrap();
        let m = members
            .all()
            .unwrap()
            .into_iter()
            .find(|m| m.email == "late@example.org")
            .unwrap();
        members
            .update::<skiff::store::StoreError>(&skiff::model::uuid_key(&m.id), |m| {
                if let Some(i) = m.invitation.as_mut() {
                    i.expires_at = skiff::model::now() - chrono::TimeDelta::seconds(1);
                }
                Ok(())
            })
            .unwrap();
        store.flush().unwrap();
    }
    s.spawn();
    for url in [&late, &cancelled] {
        let mut b = Browser::new(&s.base);
        let path = &url[url.find("/ui/invite/").unwrap()..];
        let p = b.get(path);
        assert_eq!(p.status, 400, "{}", p.body);
        assert!(p.body.contains("not valid"), "{}", p.body);
        // A post with a token of the anonymous session is refused the same way.
        let t = b.csrf("/ui/login");
        let p = b.post(
            path,
            &[
                ("csrf", &t),
                ("password", "a-long-password-1"),
                ("password2", "a-long-password-1"),
            ],
        );
        assert_eq!(p.status, 400, "{}", p.body);
    }
    let members = s
        .admin_call(
            "GET",
            &format!("/api/v1/projects/{}/members", s.admin.project_id),
        )
        .send();
    assert_eq!(members.body["total"], 1, "{}", members.text);
    assert_eq!(members.body["data"][0]["status"], "pending");
    // The next invitation drops the expired one, and the same email may come again.
    let (_, again) = invite(&s, "late@example.org");
    let mut b = Browser::new(&s.base);
    assert_eq!(accept(&mut b, &again, "a-long-password-1").status, 303);
    let members = s
        .admin_call(
            "GET",
            &format!("/api/v1/projects/{}/members", s.admin.project_id),
        )
        .send();
    assert_eq!(members.body["total"], 1, "{}", members.text);
    assert_eq!(members.body["data"][0]["status"], "active");
}
