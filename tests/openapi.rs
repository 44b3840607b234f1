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
