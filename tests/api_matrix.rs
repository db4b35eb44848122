//! The role × operation matrix: every operation of the served OpenAPI document (new
//! ones join by being served) called by a key of every system role and of custom
//! roles, each allowed or refused exactly as the permission it declares
//! (`x-skiff-permission`) and the role's permissions say; a refused call changes
//! nothing. Then another account's key gets 404 on every operation that names one of
//! this account's resources.

mod common;
use common::*;
use serde_json::{json, Map, Value};

const FAKE_UUID: &str = "00000000-0000-4000-8000-00000000beef";

/// One caller of the matrix.
struct Who {
    label: String,
    key: String,
    /// Account-scope permissions of its account role.
    account: Vec<String>,
    /// The account role reaches every project.
    all_projects: bool,
    /// Permissions of its grant in the default project (project roles).
    in_project: Vec<String>,
}

impl Who {
    fn may(&self, perm: &str, project_scoped: bool) -> bool {
        if project_scoped {
            self.in_project.iter().any(|p| p == perm)
                || (self.all_projects && self.account.iter().any(|p| p == perm))
        } else {
            self.account.iter().any(|p| p == perm)
        }
    }

    fn sees_project(&self) -> bool {
        self.all_projects || !self.in_project.is_empty()
    }
}

/// A value of `schema` that deserialises: required fields only.
fn sample(schema: &Value, spec: &Value, depth: usize) -> Value {
    if depth > 6 {
        return Value::Null;
    }
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return sample(&spec["components"]["schemas"][name], spec, depth + 1);
    }
    for k in ["allOf", "oneOf", "anyOf"] {
        let some = schema[k]
            .as_array()
            .and_then(|a| a.iter().find(|v| v["type"] != "null"));
        if let Some(first) = some {
            return sample(first, spec, depth + 1);
        }
    }
    if let Some(e) = schema["enum"].as_array().and_then(|a| a.first()) {
        return e.clone();
    }
    let ty = match &schema["type"] {
        Value::Array(t) => t
            .iter()
            .find(|t| *t != "null")
            .cloned()
            .unwrap_or(Value::Null),
        t => t.clone(),
    };
    match ty.as_str() {
        Some("object") | None if schema["properties"].is_object() => {
            let mut m = Map::new();
            let props = schema["properties"].as_object().unwrap();
            for r in schema["required"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap();
                m.insert(r.to_string(), sample(&props[r], spec, depth + 1));
            }
            Value::Object(m)
        }
        Some("object") => json!({}),
        Some("array") => json!([]),
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(false),
        Some("string") => match schema["format"].as_str() {
            Some("uuid") => json!(FAKE_UUID),
            Some("email") => json!("someone@example.org"),
            Some("date-time") => json!("2099-01-01T00:00:00Z"),
            _ => json!("x"),
        },
        _ => Value::Null,
    }
}

struct Op {
    id: String,
    method: String,
    path: String,
    perm: String,
    body: Option<Value>,
}

/// Every served operation, its path ids made up (a project in the path is the
/// default project, so that allowed callers reach the operation itself).
fn operations(spec: &Value, project: &str) -> Vec<Op> {
    let mut out = vec![];
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(id) = op["operationId"].as_str() else {
                continue;
            };
            let mut p = path.clone();
            for param in op["parameters"].as_array().into_iter().flatten() {
                let param = match param["$ref"].as_str() {
                    Some(r) => &spec["components"]["parameters"][r.rsplit('/').next().unwrap()],
                    None => param,
                };
                if param["in"] != "path" {
                    continue;
                }
                let name = param["name"].as_str().unwrap();
                let v = if name == "id" && path.starts_with("/api/v1/projects/{id}") {
                    project.to_string()
                } else if param["schema"]["type"] == "integer" {
                    "999999".to_string()
                } else {
                    FAKE_UUID.to_string()
                };
                p = p.replace(&format!("{{{name}}}"), &v);
            }
            let body = op["requestBody"]["content"]["application/json"]["schema"]
                .is_object()
                .then(|| {
                    sample(
                        &op["requestBody"]["content"]["application/json"]["schema"],
                        spec,
                        0,
                    )
                });
            out.push(Op {
                id: id.to_string(),
                method: method.to_uppercase(),
                path: p,
                perm: op["x-skiff-permission"]
                    .as_str()
                    .unwrap_or("missing")
                    .to_string(),
                body,
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// What the owner sees of the account: a refused call must leave it as it was.
fn fingerprint(s: &Server) -> Value {
    let mut all = Map::new();
    for path in [
        "/api/v1/projects?limit=1000",
        "/api/v1/api-keys?limit=1000",
        "/api/v1/roles?limit=1000",
        "/api/v1/members?limit=1000",
        "/api/v1/ssh-keys",
        "/api/v1/security-groups",
        "/api/v1/vpcs",
        "/api/v1/volumes",
        "/api/v1/backup-schedules",
        "/api/v1/vms",
    ] {
        let r = s
            .admin_call("GET", path)
            .project(&s.admin.project_id)
            .send();
        let mut v = r.body["data"].clone();
        strip(&mut v, "last_used_at");
        all.insert(path.to_string(), v);
    }
    Value::Object(all)
}

fn strip(v: &mut Value, field: &str) {
    match v {
        Value::Object(m) => {
            m.remove(field);
            m.values_mut().for_each(|x| strip(x, field));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| strip(x, field)),
        _ => {}
    }
}

fn role(s: &Server, slug: &str) -> Value {
    let r = s.admin_call("GET", "/api/v1/roles?limit=1000").send();
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["slug"] == slug)
        .unwrap_or_else(|| panic!("no role {slug}"))
        .clone()
}

fn perms(role: &Value) -> Vec<String> {
    role["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

fn scope_of(catalog: &Value, perm: &str) -> bool {
    catalog
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == perm)
        .unwrap_or_else(|| panic!("{perm} is not in the catalog"))["scope"]
        == "project"
}

#[test]
fn every_operation_is_allowed_or_refused_as_the_catalog_says() {
    let mut s = Server::start(RELAXED);
    s.kill();
    let other = s.create_account("elsewhere");
    s.spawn();
    let s = s;
    let p = s.admin.project_id.clone();
    let spec = s.call("GET", "/api/openapi.json").send().body;
    let catalog = s.admin_call("GET", "/api/v1/permissions").send().body["data"].clone();
    let ops = operations(&spec, &p);
    assert!(ops.len() > 100, "only {} operations served", ops.len());
    for op in &ops {
        assert!(
            !["missing", "unknown"].contains(&op.perm.as_str()),
            "{} declares no permission",
            op.id
        );
    }

    // Custom roles: one of each scope.
    for (slug, scope, ps) in [
        (
            "key-reader",
            "account",
            json!([
                "account.projects.view",
                "account.apikeys.view",
                "account.members.view"
            ]),
        ),
        (
            "vm-watch",
            "project",
            json!(["vm.view", "vm.power", "volume.view", "project.members.view"]),
        ),
    ] {
        let r = s
            .admin_call("POST", "/api/v1/roles")
            .json(json!({"name": slug, "slug": slug, "scope": scope, "permissions": ps}));
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let billing = role(&s, "billing");
    let mut who = vec![Who {
        label: "owner".into(),
        key: s.admin.api_key.clone(),
        account: perms(&role(&s, "owner")),
        all_projects: true,
        in_project: vec![],
    }];
    let key = |role_id: &Value| -> (String, String) {
        let r = s
            .admin_call("POST", "/api/v1/api-keys")
            .json(json!({"name": "matrix", "role_id": role_id}));
        assert_eq!(r.status, 201, "{}", r.text);
        (
            r.body["data"]["id"].as_str().unwrap().to_string(),
            r.body["data"]["secret"].as_str().unwrap().to_string(),
        )
    };
    for slug in ["admin", "billing", "member", "key-reader"] {
        let r = role(&s, slug);
        who.push(Who {
            label: slug.into(),
            key: key(&r["id"]).1,
            account: perms(&r),
            all_projects: slug == "admin",
            in_project: vec![],
        });
    }
    // Project roles ride on a Billing key granted the role in the default project.
    for slug in [
        "project-admin",
        "operator",
        "project-member",
        "viewer",
        "vm-watch",
    ] {
        let r = role(&s, slug);
        let (id, secret) = key(&billing["id"]);
        let g = s
            .admin_call("POST", &format!("/api/v1/projects/{p}/members"))
            .json(json!({"api_key_id": id, "role_id": r["id"]}));
        assert_eq!(g.status, 201, "{}", g.text);
        who.push(Who {
            label: slug.into(),
            key: secret,
            account: perms(&billing),
            all_projects: false,
            in_project: perms(&r),
        });
    }

    let mut wrong = vec![];
    for op in &ops {
        for w in &who {
            // "a|b": either; a project-scoped one makes the whole project-scoped.
            let (mut allowed, mut project_scoped) = (false, false);
            for perm in op.perm.split('|') {
                let (a, ps) = match perm {
                    "" => (true, false),
                    perm => match perm.strip_prefix("operator:") {
                        Some(p) => (w.may(p, false), false),
                        None => {
                            let ps = scope_of(&catalog, perm);
                            (w.may(perm, ps), ps)
                        }
                    },
                };
                allowed |= a;
                project_scoped |= ps;
            }
            // An operation on a project in the path also needs to see that project.
            if op.path.starts_with(&format!("/api/v1/projects/{p}")) {
                allowed &= w.sees_project();
                project_scoped = true;
            }
            let before = (!allowed).then(|| fingerprint(&s));
            let call = s.call(&op.method, &op.path).key(&w.key).project(&p);
            let r = match &op.body {
                Some(b) => call.json(b.clone()),
                None => call.send(),
            };
            let text = r.text.clone();
            let verdict = if allowed {
                if r.status == 401 || r.status == 403 || text.contains("project not found") {
                    Some(format!("refused ({}) but the catalog allows it", r.status))
                } else {
                    None
                }
            } else {
                let listed_nothing = op.method == "GET"
                    && r.status == 200
                    && r.body["data"].as_array().is_some_and(|a| a.is_empty());
                let hidden = r.status == 404 && project_scoped && !w.sees_project();
                if r.status == 403 || hidden || listed_nothing {
                    None
                } else {
                    Some(format!("answered {} but the catalog refuses it", r.status))
                }
            };
            if let Some(v) = verdict {
                wrong.push(format!(
                    "{} {} ({} {}) as {}: {v}: {}",
                    op.id,
                    op.perm,
                    op.method,
                    op.path,
                    w.label,
                    &text[..text.len().min(160)]
                ));
            }
            if let Some(b) = before {
                if fingerprint(&s) != b {
                    wrong.push(format!("{} as {}: refused, yet it changed", op.id, w.label));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} calls broke the matrix:\n{}",
        wrong.len(),
        ops.len() * who.len(),
        wrong.join("\n")
    );

    // Another account's owner: every operation naming one of this account's
    // resources answers exactly as for an id that names nothing (404, or the same
    // refusal of the body): nothing says it exists.
    let sg = s
        .admin_call("POST", "/api/v1/security-groups")
        .project(&p)
        .json(json!({"name": "mine"}));
    assert_eq!(sg.status, 201, "{}", sg.text);
    let ssh = s
        .admin_call("POST", "/api/v1/ssh-keys")
        .json(json!({"name": "mine",
        "public_key": ED25519}));
    assert_eq!(ssh.status, 201, "{}", ssh.text);
    let custom = role(&s, "key-reader");
    let members = s.admin_call("GET", "/api/v1/members").send().body;
    let ids = [
        ("/api/v1/projects/", p.clone()),
        (
            "/api/v1/security-groups/",
            sg.body["data"]["id"].as_str().unwrap().to_string(),
        ),
        (
            "/api/v1/ssh-keys/",
            ssh.body["data"]["id"].as_str().unwrap().to_string(),
        ),
        ("/api/v1/roles/", custom["id"].as_str().unwrap().to_string()),
        ("/api/v1/api-keys/", s.admin.api_key_id.clone()),
        (
            "/api/v1/members/",
            members["data"][0]["id"].as_str().unwrap().to_string(),
        ),
    ];
    let before = fingerprint(&s);
    let mut leaked = vec![];
    let mut checked = 0;
    for op in &ops {
        for (prefix, real) in &ids {
            let (fake, path) = if *prefix == "/api/v1/projects/" {
                if !op.path.starts_with(&format!("{prefix}{p}")) {
                    continue;
                }
                (op.path.replacen(&p, FAKE_UUID, 1), op.path.clone())
            } else {
                if !op.path.starts_with(&format!("{prefix}{FAKE_UUID}")) {
                    continue;
                }
                (op.path.clone(), op.path.replacen(FAKE_UUID, real, 1))
            };
            let send = |path: &str| {
                let call = s
                    .call(&op.method, path)
                    .key(&other.api_key)
                    .project(&other.project_id);
                match &op.body {
                    Some(b) => call.json(b.clone()),
                    None => call.send(),
                }
            };
            let (r, nothing) = (send(&path), send(&fake));
            checked += 1;
            let same = (r.status, r.text.replace(real.as_str(), FAKE_UUID))
                == (nothing.status, nothing.text.clone());
            if !same || r.status == 200 || r.status == 403 {
                leaked.push(format!(
                    "{} {path}: {} {} (an id of nothing: {} {})",
                    op.id, r.status, r.text, nothing.status, nothing.text
                ));
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} calls named another account's resources"
    );
    assert!(
        leaked.is_empty(),
        "another account's key saw:\n{}",
        leaked.join("\n")
    );
    assert_eq!(fingerprint(&s), before, "another account changed something");
}
