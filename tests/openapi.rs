//! The committed `openapi/openapi.json` must be what the code generates.

#[test]
fn the_committed_spec_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let committed = std::fs::read_to_string(path).expect("openapi/openapi.json is committed");
    let generated = mailgate::api::openapi::json();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `mailgate openapi > openapi/openapi.json`"
    );
}

/// Validators (and generated clients) need each operation named once, after its resource.
#[test]
fn operation_ids_are_unique() {
    let spec: serde_json::Value =
        serde_json::from_str(&mailgate::api::openapi::json()).expect("the spec is JSON");
    let mut seen = std::collections::BTreeMap::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            if let Some(other) = seen.insert(id.to_string(), format!("{method} {path}")) {
                panic!("operationId `{id}` is used by {other} and {method} {path}");
            }
        }
    }
}

/// The spec has one operation per route of the table the gate enforces
/// (`api::access::ROUTES`), and the other way round: no route goes unruled or undocumented.
#[test]
fn the_spec_and_the_access_table_list_the_same_routes() {
    let spec: serde_json::Value =
        serde_json::from_str(&mailgate::api::openapi::json()).expect("the spec is JSON");
    let mut in_spec = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            in_spec.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    let in_table: Vec<String> = mailgate::api::access::ROUTES
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let missing: Vec<_> = in_spec.iter().filter(|o| !in_table.contains(o)).collect();
    let extra: Vec<_> = in_table.iter().filter(|o| !in_spec.contains(o)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "in the spec, not in api::access::ROUTES: {missing:?}; in the table, not in the spec: {extra:?}"
    );
}
