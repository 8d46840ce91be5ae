//! Locked-down defaults: the optional API key, CORS only when asked for, no internals in errors.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::helpers::{Launch, TempDir, TestApp, mri, tiny_failing_onnx, tiny_spec};

const KEY: &str = "test-key-0123456789";

#[tokio::test]
async fn an_api_key_guards_everything_but_the_probes() {
    let app = Launch::new().env("SCORER_API_KEY", KEY).spawn().await;
    for open in ["/", "/health", "/ready"] {
        assert_eq!(app.get(open).await.status(), 200, "{open} stays open for the platform's probes");
    }
    let without = app.classify_response(mri("Te-gl_0010.jpg")).await;
    assert_eq!(without.status(), 401);
    assert_eq!(without.headers()["www-authenticate"], "Bearer");
    assert_eq!(without.json::<Value>().await.unwrap()["code"], "unauthorized");

    for wrong in ["Bearer nope", "Bearer test-key-012345678", "Basic dGVzdA==", KEY] {
        let response = app
            .score_request()
            .header("authorization", wrong)
            .header("content-type", "image/jpeg")
            .body(mri("Te-gl_0010.jpg"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{wrong}");
    }
    assert_eq!(app.get("/metrics").await.status(), 401, "metrics need the key too");

    let right = app
        .score_request()
        .bearer_auth(KEY)
        .header("content-type", "image/jpeg")
        .body(mri("Te-gl_0010.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert!(!app.logs().contains(KEY), "the key must never be logged");
}

#[tokio::test]
async fn the_api_key_can_come_from_a_mounted_file() {
    let dir = TempDir::new("key");
    let file = dir.path().join("api-key");
    std::fs::write(&file, format!("{KEY}\n")).unwrap();
    let app = Launch::new().env("SCORER_API_KEY_FILE", file.display()).spawn().await;
    assert_eq!(app.classify_response(mri("Te-gl_0010.jpg")).await.status(), 401);
    let right = app.client.get(app.url("/metrics")).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(right.status(), 200);
}

#[tokio::test]
async fn cors_is_off_unless_origins_are_configured() {
    let preflight = |app: &TestApp, origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/score"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let closed = TestApp::spawn().await;
    let response = preflight(&closed, "https://app.example").await.unwrap();
    assert!(!response.headers().contains_key("access-control-allow-origin"));
    let response = closed.client.get(closed.url("/health")).header("origin", "https://app.example").send().await;
    assert!(!response.unwrap().headers().contains_key("access-control-allow-origin"));

    let open =
        Launch::new().env("SCORER_CORS_ALLOWED_ORIGINS", "https://app.example,https://other.example").spawn().await;
    let allowed = preflight(&open, "https://app.example").await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example");
    let refused = preflight(&open, "https://evil.example").await.unwrap();
    assert!(!refused.headers().contains_key("access-control-allow-origin"));
    let scored = open
        .score_request()
        .header("origin", "https://other.example")
        .header("content-type", "image/jpeg")
        .body(mri("Te-gl_0010.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(scored.status(), 200);
    assert_eq!(scored.headers()["access-control-allow-origin"], "https://other.example");
}

#[tokio::test]
async fn error_bodies_carry_no_paths_or_internals() {
    let app = TestApp::spawn().await;
    let jpeg = mri("Te-gl_0010.jpg");
    let bodies = [
        app.score_raw("image/jpeg", jpeg[..jpeg.len() / 2].to_vec()).await,
        app.score_raw("image/png", b"\x89PNG\r\n\x1a\n garbage".to_vec()).await,
        app.score_raw("application/json", b"{\"image\": 1}".to_vec()).await,
        app.score_raw("multipart/form-data; boundary=x", b"--x\r\nbroken".to_vec()).await,
        app.get("/does/not/exist").await,
    ];
    for response in bodies {
        let status = response.status();
        let text = response.text().await.unwrap();
        for leak in ["/work", "/home", "/root", "src/", ".rs", "panicked", "backtrace", "Error {"] {
            assert!(!text.contains(leak), "{status} body leaks `{leak}`: {text}");
        }
    }
}

/// A fault of the server's own, here ONNX Runtime failing on a batch, is a 500 whose body says
/// only that inference failed, in either front end's shape; the cause goes to the log, and the
/// server goes on serving. The model (scripts/make_tiny_model.py) loads and warms up like any
/// other, then fails in its Gather node on every real image.
#[tokio::test]
async fn an_inference_failure_is_an_opaque_500_and_the_cause_is_logged() {
    let dir = TempDir::new("failing-model");
    let model_dir = dir.model("failing", &tiny_spec(), &tiny_failing_onnx());
    let app = Launch::new().model_dir(&model_dir).spawn().await;

    let response = app.classify_response(mri("Te-gl_0010.jpg")).await;
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["content-type"], "application/json");
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"message": "inference failed; the server log has the details", "code": "inference_failed"})
    );

    let image = STANDARD.encode(mri("Te-me_0016.jpg"));
    let v2 = json!({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [image]}]});
    let response = app.client.post(app.url("/v2/models/tiny-known-weights/infer")).json(&v2).send().await.unwrap();
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"error": "inference failed; the server log has the details", "code": "inference_failed"}));

    // The request's log line has the cause, in ONNX Runtime's own words.
    let logs = app.logs_containing(&request_id).await;
    let line =
        logs.lines().find(|l| l.contains(&request_id)).unwrap_or_else(|| panic!("no line for {request_id}:\n{logs}"));
    assert!(line.contains("status=500"), "{line}");
    assert!(line.contains("Gather node") && line.contains("indices element out of data bounds"), "{line}");
    // Still up, still ready, and it counted both.
    assert_eq!(app.get("/ready").await.status(), 200);
    assert_eq!(app.score_answers(500).await, 1.0);
}

/// ONNX Runtime 1.31's POSIX telemetry writes a device id and an event queue for upload under
/// ~/.cache/Microsoft unless opted out; the server opts out before the library loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onnx_runtime_telemetry_stays_off() {
    let telemetry_dir = |home: &TempDir| home.path().join(".cache/Microsoft/DeveloperTools/.onnxruntime");
    // The library also stays quiet when it sees a CI service's marker variable (these are the
    // names in libonnxruntime.so 1.31); without removing them both halves would pass vacuously or
    // fail under CI.
    let outside_ci = |launch: Launch| CI_MARKERS.iter().fold(launch, |launch, key| launch.env_remove(key));

    let home = TempDir::new("telemetry-off");
    let app = outside_ci(Launch::new()).env("HOME", home.path().display()).spawn().await;
    assert_eq!(app.classify(mri("Te-no_0022.jpg")).await["predictions"][0]["label"], "notumor");
    drop(app);
    assert!(!telemetry_dir(&home).exists(), "ONNX Runtime wrote its telemetry files");

    // The check can fail: with the opt-out explicitly withdrawn, the library writes them.
    let opted_in = TempDir::new("telemetry-on");
    let app = outside_ci(Launch::new())
        .env("HOME", opted_in.path().display())
        .env("ORT_DISABLE_TELEMETRY", "0")
        .spawn()
        .await;
    drop(app);
    assert!(telemetry_dir(&opted_in).join("deviceid").is_file(), "the library's telemetry files were expected here");
}

const CI_MARKERS: [&str; 12] = [
    "CI",
    "TF_BUILD",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "CIRCLECI",
    "TRAVIS",
    "JENKINS_URL",
    "CODEBUILD_BUILD_ID",
    "BUILDKITE",
    "TEAMCITY_VERSION",
    "APPVEYOR",
    "BITBUCKET_BUILD_NUMBER",
];
