//! The spec and Swagger UI are served by the running gateway.

use serde_json::Value;

use crate::support::app::spawn_app;

#[tokio::test]
async fn serves_the_spec_and_swagger_ui() {
    let app = spawn_app().await;
    let spec: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["info"]["title"], "mailgate");
    assert!(spec["paths"]["/v1/emails"]["post"].is_object());
    let committed: Value = serde_json::from_str(&mailgate::api::openapi::json()).unwrap();
    assert_eq!(spec, committed);
    let docs = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text().await.unwrap().contains("swagger"),
        "Swagger UI is served without any download"
    );
}
