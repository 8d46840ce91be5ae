//! Bad input gets a JSON error with the right status and code, and the server keeps serving.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::helpers::{Launch, TestApp, mri};
use crate::images;

async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "expected {status} {code}");
    assert!(
        response.headers()["content-type"].to_str().unwrap().starts_with("application/json"),
        "error bodies are JSON"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body
}

async fn assert_still_serving(app: &TestApp) {
    let body = app.classify(mri("Te-me_0016.jpg")).await;
    assert_eq!(body["predictions"][0]["label"], "meningioma");
}

#[tokio::test]
async fn malformed_requests_are_400_with_a_clear_code() {
    let app = TestApp::spawn().await;
    let jpeg = mri("Te-gl_0010.jpg");
    let truncated = jpeg[..jpeg.len() / 3].to_vec();
    let png = images::png(&jpeg);
    let truncated_png = png[..png.len() / 2].to_vec();
    let mut corrupt_png = png;
    let middle = corrupt_png.len() / 2;
    corrupt_png[middle..middle + 64].fill(0xAB);
    // Its marker segments after the first (tables, frame header) overwritten; the signature stays.
    let mut corrupt_jpeg = jpeg.clone();
    corrupt_jpeg[20..600].fill(0xAB);

    let cases: Vec<(&str, reqwest::RequestBuilder, &str)> = vec![
        (
            "broken JSON",
            app.score_request().header("content-type", "application/json").body("{\"image\": "),
            "invalid_json",
        ),
        ("JSON of the wrong type", app.score_request().json(&json!({"image": 42})), "invalid_json"),
        ("JSON without an image", app.score_request().json(&json!({"data": "x"})), "invalid_json"),
        (
            "deeply nested JSON",
            app.score_request().header("content-type", "application/json").body("[".repeat(100_000)),
            "invalid_json",
        ),
        ("invalid base64", app.score_request().json(&json!({"image": "not base64!"})), "invalid_base64"),
        (
            "base64 of text",
            app.score_request().json(&json!({"image": STANDARD.encode("hello")})),
            "unsupported_image_format",
        ),
        ("empty list", app.score_request().json(&json!({"images": []})), "no_image"),
        (
            "empty body",
            app.score_request().header("content-type", "image/jpeg").body(Vec::<u8>::new()),
            "unsupported_image_format",
        ),
        (
            "random bytes",
            app.score_request().header("content-type", "application/octet-stream").body(vec![7u8; 4096]),
            "unsupported_image_format",
        ),
        ("truncated JPEG", app.score_request().header("content-type", "image/jpeg").body(truncated), "invalid_image"),
        ("corrupt PNG", app.score_request().header("content-type", "image/png").body(corrupt_png), "invalid_image"),
        ("truncated PNG", app.score_request().header("content-type", "image/png").body(truncated_png), "invalid_image"),
        ("corrupt JPEG", app.score_request().header("content-type", "image/jpeg").body(corrupt_jpeg), "invalid_image"),
        (
            "multipart without files",
            app.score_request().multipart(reqwest::multipart::Form::new().text("a", "b")),
            "no_image",
        ),
        (
            "multipart without boundary",
            app.score_request().header("content-type", "multipart/form-data").body("x"),
            "invalid_multipart",
        ),
    ];
    for (what, request, code) in cases {
        let response = request.send().await.unwrap();
        let status = response.status();
        println!("{what}: {status}");
        assert_error(response, 400, code).await;
    }
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn the_image_index_is_named_in_batch_errors() {
    let app = TestApp::spawn().await;
    let good = STANDARD.encode(mri("Te-gl_0010.jpg"));
    let response = app.score_json(&json!({"images": [good, "!!!"]})).await;
    let body = assert_error(response, 400, "invalid_base64").await;
    assert!(body["message"].as_str().unwrap().starts_with("image 1:"), "{body}");
}

#[tokio::test]
async fn unsupported_content_types_are_415() {
    let app = TestApp::spawn().await;
    for content_type in ["text/plain", "application/xml", "application/x-www-form-urlencoded"] {
        let response = app.score_raw(content_type, mri("Te-gl_0010.jpg")).await;
        assert_error(response, 415, "unsupported_media_type").await;
    }
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn limits_on_body_pixels_and_image_count_are_413() {
    let app = Launch::new()
        .env("SCORER_MAX_BODY_BYTES", 200_000)
        .env("SCORER_MAX_IMAGES_PER_REQUEST", 2)
        .env("SCORER_MAX_IMAGE_PIXELS", 1_000_000)
        .spawn()
        .await;

    let big = app.score_raw("application/octet-stream", vec![0u8; 300_000]).await;
    assert_error(big, 413, "body_too_large").await;

    // 60000×60000 pixels would be 10.8 GB decoded; the header alone must be enough to refuse.
    let bomb = app.score_raw("image/png", images::huge_png_header(60_000, 60_000)).await;
    let body = assert_error(bomb, 413, "image_too_large").await;
    assert!(body["message"].as_str().unwrap().contains("60000x60000"), "{body}");

    let three = vec![STANDARD.encode(mri("Te-no_0021.jpg")); 3];
    let response = app.score_json(&json!({ "images": three })).await;
    assert_error(response, 413, "too_many_images").await;

    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let app = Launch::new()
        .env("SCORER_QUEUE_CAPACITY", 4)
        .env("SCORER_MAX_IMAGES_PER_REQUEST", 4)
        .env("SCORER_MAX_BATCH_SIZE", 1)
        .spawn()
        .await;
    let four = vec![STANDARD.encode(mri("Te-gl_0010.jpg")); 4];
    let first = {
        let request = app.score_request().json(&json!({ "images": four }));
        tokio::spawn(async move { request.send().await.unwrap().status() })
    };
    // The first request holds every queue place until its last image is answered (four model
    // runs of one image each); once all four are taken, the queue is full.
    app.wait_for_metric("scorer_images_in_flight", 4.0).await;
    let refused = app.classify_response(mri("Te-me_0016.jpg")).await;
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_error(refused, 503, "overloaded").await;
    assert_eq!(first.await.unwrap(), 200, "the admitted request still completes");
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_request_past_its_deadline_is_504() {
    let app = Launch::new().env("SCORER_REQUEST_TIMEOUT_MS", 20).spawn().await;
    let four = vec![STANDARD.encode(mri("Te-gl_0010.jpg")); 4];
    let response = app.score_json(&json!({ "images": four })).await;
    assert_error(response, 504, "timeout").await;
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = TestApp::spawn().await;
    assert_error(app.get("/nope").await, 404, "not_found").await;
    // RFC 9110: a 405 lists the methods the path does serve.
    let cases: &[(&str, &str, &str)] = &[
        ("GET", "/score", "POST, OPTIONS"),
        ("PUT", "/score", "POST, OPTIONS"),
        ("TRACE", "/ready", "GET"),
        ("POST", "/health", "GET"),
        ("DELETE", "/", "GET"),
        ("POST", "/metrics", "GET"),
        ("PATCH", "/swagger.json", "GET"),
    ];
    for (method, path, allow) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app.client.request(method.clone(), app.url(path)).body("x").send().await.unwrap();
        assert_eq!(response.headers().get("allow").map(|v| v.to_str().unwrap()), Some(*allow), "{method} {path}");
        let body = assert_error(response, 405, "method_not_allowed").await;
        assert!(body["message"].as_str().unwrap().contains(allow), "{body}");
    }
}
