//! Health, the public catalog and the served OpenAPI document, over real HTTP.

mod common;
use common::*;

const CATALOG: &str = r#"
[[catalog.templates]]
id = "5ac21891-32e6-41ce-8a93-b5d6ab708b0d"
name = "Debian"
version = "12"
cpu = 1
ram = 1
storage = 10
region = "us-east"

[[catalog.templates]]
id = "0b0a8ef1-8f8b-4b43-9a3e-3f8e7a0e0c11"
name = "Windows Server"
version = "2022"
cpu = 2
ram = 4
storage = 50
is_windows = true
os_type = "windows"
region = "us-east"

[[catalog.templates]]
id = "7d1f3a52-4c1e-4f7e-8b9a-0a1b2c3d4e5f"
name = "WordPress"
version = "6"
cpu = 1
ram = 1
storage = 20
category = "marketplace"
region = "us-east"

[catalog.volume_pricing]
id = 7
price_per_gb_month = 0.05
"#;

#[test]
fn health_ready_and_catalog_need_no_key() {
    let s = Server::start(CATALOG);
    let r = s.call("GET", "/health").send();
    assert_eq!(
        (r.status, r.body.clone()),
        (200, serde_json::json!({"status": "healthy"}))
    );
    assert_eq!(s.call("GET", "/ready").send().status, 200);

    let r = s.call("GET", "/api/v1/public/regions").send();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["success"], true);
    let regions = r.body["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 1);
    assert_eq!(regions[0]["code"], "us-east");
    assert_eq!(regions[0]["is_default"], true);
    assert!(r.header("x-request-id").is_some());
}

#[test]
fn templates_filter_by_category_vm_type_and_region() {
    let s = Server::start(CATALOG);
    let names = |q: &str| -> Vec<String> {
        let r = s
            .call("GET", &format!("/api/v1/public/templates{q}"))
            .send();
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.body["total"].as_u64().unwrap() as usize,
            r.body["data"].as_array().unwrap().len()
        );
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(""), ["Debian", "Windows Server", "WordPress"]);
    assert_eq!(names("?category=marketplace"), ["WordPress"]);
    assert_eq!(names("?vm_type=standard"), ["Debian", "WordPress"]);
    assert_eq!(
        names("?vm_type=premium&category=os"),
        ["Debian", "Windows Server"]
    );
    assert_eq!(names("?region=us-east").len(), 3);
    for bad in ["?category=apps", "?vm_type=huge", "?region=mars-1"] {
        let m = s
            .call("GET", &format!("/api/v1/public/templates{bad}"))
            .send()
            .error(400);
        assert!(m.contains("must be one of"), "{m}");
    }
}

#[test]
fn vm_plans_and_prices_come_from_configuration() {
    let s = Server::start(CATALOG);
    let r = s.call("GET", "/api/v1/public/pricing/vm").send();
    assert_eq!(r.status, 200);
    let plans = r.body["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 6);
    for p in plans {
        for k in ["id", "vcpu", "memory_gib", "ssd_gib", "transfer_gib"] {
            assert!(p[k].is_i64(), "{k} in {p}");
        }
        assert!(p["price_per_hour"].is_number());
    }
    let r = s
        .call("GET", "/api/v1/public/pricing/vm?type=premium")
        .send();
    let premium = r.body["plans"].as_array().unwrap();
    assert_eq!(premium.len(), 2);
    assert!(premium.iter().all(|p| p["vm_type"] == "premium"));
    s.call("GET", "/api/v1/public/pricing/vm?type=gpu")
        .send()
        .error(400);

    let r = s.call("GET", "/api/v1/public/pricing/volume").send();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["pricing"]["id"], 7);
    assert_eq!(r.body["pricing"]["price_per_gb_month"], 0.05);
    assert_eq!(r.body["pricing"]["region"], "us-east");
    for kind in ["snapshot", "backup"] {
        let r = s
            .call(
                "GET",
                &format!("/api/v1/public/pricing/{kind}?region=us-east"),
            )
            .send();
        assert_eq!(r.status, 200);
        assert!(r.body["pricing"].get("id").is_none());
        s.call(
            "GET",
            &format!("/api/v1/public/pricing/{kind}?region=eu-west"),
        )
        .send()
        .error(404);
    }
    let r = s.call("GET", "/api/v1/public/pricing/ip").send();
    assert_eq!(r.status, 200);
    assert!(r.body["pricing"]["ipv4"]["monthly_price"].is_number());
    assert!(r.body["pricing"]["ipv6"]["yearly_price"].is_number());
}

#[test]
fn the_served_openapi_document_lists_what_is_implemented() {
    let s = Server::start("");
    let r = s.call("GET", "/api/openapi.json").send();
    assert_eq!(r.status, 200);
    let paths = r.body["paths"].as_object().unwrap();
    let mut ops = vec![];
    for (_, item) in paths {
        for (_, op) in item.as_object().unwrap() {
            if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                ops.push(id.to_string());
            }
        }
    }
    for id in CONTRACT_CHECKED {
        assert!(
            ops.iter().any(|o| o == id),
            "{id} missing from the served spec"
        );
    }
    let scheme = &r.body["components"]["securitySchemes"]["ApiKeyAuth"];
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], "X-API-Key");
    // Public operations say they need no key.
    assert_eq!(paths["/health"]["get"]["security"], serde_json::json!([{}]));
}
