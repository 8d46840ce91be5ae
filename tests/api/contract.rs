//! The Azure ML inference contract: probes, request ids, headers, OpenAPI, metrics.

use serde_json::Value;

use crate::helpers::{Launch, TestApp, mri};

#[tokio::test]
async fn liveness_routes_answer_like_azures_server() {
    let app = TestApp::spawn().await;
    let root = app.get("/").await;
    assert_eq!(root.status(), 200);
    assert_eq!(root.text().await.unwrap(), "Healthy");
    let health = app.get("/health").await;
    assert_eq!(health.status(), 200);
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["model"]["name"], "brain-tumor-vgg16");
    let options = app.client.request(reqwest::Method::OPTIONS, app.url("/score")).send().await.unwrap();
    assert_eq!(options.status(), 200);
}

#[tokio::test]
async fn request_ids_are_echoed_generated_and_limited() {
    let app = TestApp::spawn().await;
    let response = app
        .score_request()
        .header("x-request-id", "req-123")
        .header("x-ms-client-request-id", "client-456")
        .header("content-type", "image/jpeg")
        .body(mri("Te-pi_0014.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["x-request-id"], "req-123");
    assert_eq!(headers["x-ms-client-request-id"], "client-456");
    assert_eq!(headers["x-ms-request-id"], "client-456");
    let exec_ms: f64 = headers["x-ms-run-fn-exec-ms"].to_str().unwrap().parse().unwrap();
    assert!(exec_ms > 0.0);

    let generated = app.get("/health").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(generated.headers()["x-ms-request-id"].to_str().unwrap(), id);

    let too_long = app.client.get(app.url("/health")).header("x-request-id", "x".repeat(101)).send().await.unwrap();
    assert_eq!(too_long.status(), 431);
    let body: Value = too_long.json().await.unwrap();
    assert_eq!(body["code"], "request_id_too_long");

    let expected = "request_id=req-123 method=POST path=/score status=200";
    let logs = app.logs_containing(expected).await;
    assert!(logs.contains(expected), "{logs}");
}

#[tokio::test]
async fn swagger_describes_the_real_schemas() {
    let app = TestApp::spawn().await;
    let doc: Value = app.get("/swagger.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    for path in ["/", "/health", "/ready", "/score", "/metrics", "/swagger.json"] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    let content = &doc["paths"]["/score"]["post"]["requestBody"]["content"];
    for content_type in [
        "application/json",
        "image/jpeg",
        "image/png",
        "application/dicom",
        "application/octet-stream",
        "multipart/form-data",
    ] {
        assert!(content[content_type].is_object(), "{content_type} is documented");
    }

    // The documented prediction fields are exactly the ones the server sends.
    let body = app.classify(mri("Te-gl_0011.jpg")).await;
    let schemas = &doc["components"]["schemas"];
    let documented = |name: &str| {
        let mut keys: Vec<String> = schemas[name]["properties"].as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let sent = |value: &Value| {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(documented("ScoreResponse"), sent(&body));
    assert_eq!(documented("ModelSummary"), sent(&body["model"]));
    // A plain image's prediction has no `dicom` or `explanation`; an explained DICOM file's has both.
    let plain = sent(&body["predictions"][0]);
    assert_eq!(plain, ["confidence", "label", "probabilities"]);
    let dicom = std::fs::read(crate::helpers::repo_root().join("tests/data/dicom/MR_small.dcm")).unwrap();
    let response = app
        .score_request()
        .query(&[("explain", "true"), ("explain_grid", "2")])
        .header("content-type", "application/dicom")
        .body(dicom)
        .send()
        .await
        .unwrap();
    let explained: Value = response.json().await.unwrap();
    let prediction = &explained["predictions"][0];
    assert_eq!(documented("Prediction"), sent(prediction));
    assert_eq!(documented("DicomFrame"), sent(&prediction["dicom"]));
    assert_eq!(documented("ExplanationBody"), sent(&prediction["explanation"]));
    assert_eq!(documented("GridSize"), sent(&prediction["explanation"]["grid"]));
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_record_batches() {
    let app = TestApp::spawn().await;
    app.classify(mri("Te-gl_0012.jpg")).await;
    app.get("/nope/123").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    for expected in [
        r#"scorer_http_requests_total{method="POST",route="/score",status="200"} 1"#,
        r#"scorer_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        "scorer_model_loaded 1",
        "scorer_batch_size_count 1",
        "scorer_inference_duration_seconds_count 1",
        "scorer_queue_wait_seconds_count 1",
        "scorer_queue_depth 0",
        "scorer_images_in_flight 0",
        "scorer_http_request_duration_seconds_bucket{route=\"/score\"",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}

#[tokio::test]
async fn json_log_lines_parse_and_carry_the_request_line() {
    let app = Launch::new().env("SCORER_LOG_FORMAT", "json").spawn().await;
    app.score_request().header("x-request-id", "json-log-1").body(mri("Te-gl_0013.jpg")).send().await.unwrap();
    let logs = app.logs_containing("request_id=json-log-1").await;
    let lines: Vec<Value> = logs
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(lines.iter().all(|l| l["timestamp"].is_string() && l["level"].is_string()), "{logs}");
    let access = lines.iter().find(|l| l["message"].as_str().unwrap_or_default().contains("request_id=json-log-1"));
    let access = access.unwrap_or_else(|| panic!("no access line in:\n{logs}"));
    assert_eq!(access["target"], "scorer::access");
    assert!(access["message"].as_str().unwrap().contains("status=200"));
}
