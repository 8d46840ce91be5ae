//! Other models through the same code: SqueezeNet (NCHW, 1000 classes, fixed batch 1) and a
//! known-weights model whose every answer numpy computes.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::helpers::{
    Launch, TempDir, log_distance, log_probabilities, mri, probabilities, repo_root, squeezenet_onnx, tiny_onnx,
    tiny_spec,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_squeezenet_nchw_logits_with_top_k() {
    let dir = TempDir::new("squeezenet");
    let spec = std::fs::read_to_string(repo_root().join("tests/fixtures/squeezenet/model.toml")).unwrap();
    let model_dir = dir.model("squeezenet", &spec, &squeezenet_onnx());
    let app = Launch::new().model_dir(&model_dir).spawn().await;

    let logs = app.logs_containing("batching up to").await;
    assert!(logs.contains("Nchw 224x224"), "{logs}");
    assert!(logs.contains("batching up to 1"), "{logs}");

    // Concurrent requests against a fixed batch of one still each get an answer.
    let tasks: Vec<_> = ["Te-gl_0010.jpg", "Te-me_0017.jpg", "Te-no_0022.jpg", "Te-pi_0015.jpg"]
        .into_iter()
        .map(|name| {
            let request = app.score_request().header("content-type", "image/jpeg").body(mri(name));
            tokio::spawn(async move { request.send().await.unwrap() })
        })
        .collect();
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["model"]["name"], "light-squeezenet");
        let prediction = &body["predictions"][0];
        let probabilities = prediction["probabilities"].as_object().unwrap();
        assert_eq!(probabilities.len(), 5, "top 5 of 1000 classes");
        // This test network has placeholder weights: every class scores the same, and the
        // softmax over 1000 equal logits gives 1/1000 each.
        for p in probabilities.values() {
            assert!((p.as_f64().unwrap() - 0.001).abs() < 1e-6, "{prediction}");
        }
        let label: usize = prediction["label"].as_str().unwrap().parse().unwrap();
        assert!(label < 1000);
    }
}

/// What scripts/make_tiny_model.py's numpy computed for one image.
#[derive(Debug, Deserialize)]
struct TinyAnswer {
    file: String,
    probabilities: HashMap<String, f32>,
}

#[derive(Debug, Deserialize)]
struct TinyAnswers {
    images: HashMap<String, TinyAnswer>,
}

/// Largest difference of any class's log-probability from numpy's. Measured worst: 0.0015 (the
/// colour JPEG, whose decoded pixels differ from Pillow's by a few levels). Computed with numpy
/// over the same 19 images, each mistake moves some class by far more: BGR for RGB 4.3, NHWC
/// written as NCHW 3.6, no mean and std 5.1, a second softmax 5.0, bicubic for bilinear 0.22.
const TINY_LOG_TOLERANCE: f64 = 0.01;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_known_weights_model_as_numpy_computes_it() {
    let text = std::fs::read_to_string(repo_root().join("tests/data/tiny/expected.json"))
        .unwrap_or_else(|e| panic!("tests/data/tiny/expected.json: {e}. Run scripts/setup.sh --test-data"));
    let expected: TinyAnswers = serde_json::from_str(&text).unwrap();
    assert_eq!(expected.images.len(), 19, "the 17 MRI images and the two colour images");
    let dir = TempDir::new("tiny");
    let model_dir = dir.model("tiny", &tiny_spec(), &tiny_onnx());
    // A batching window, so that the concurrent requests below share model runs however slowly
    // they arrive.
    let app = Launch::new().model_dir(&model_dir).env("SCORER_MAX_BATCH_WAIT_MS", 200).spawn().await;
    let logs = app.logs_containing("batching up to").await;
    assert!(logs.contains("5 classes, Nchw 32x32 Rgb input"), "{logs}");

    let tasks: Vec<_> = expected
        .images
        .iter()
        .map(|(name, answer)| {
            let bytes = std::fs::read(repo_root().join(&answer.file)).unwrap();
            let request = app.score_request().header("content-type", "application/octet-stream").body(bytes);
            let name = name.clone();
            tokio::spawn(async move { (name, request.send().await.unwrap()) })
        })
        .collect();
    let mut worst = 0f64;
    for task in tasks {
        let (name, response) = task.await.unwrap();
        assert_eq!(response.status(), 200, "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["model"]["name"], "tiny-known-weights");
        let prediction = &body["predictions"][0];
        let answer = &expected.images[&name];
        assert_eq!(probabilities(prediction).len(), 5, "{name}: every class is listed");
        let difference = log_distance(&log_probabilities(prediction), &answer.probabilities);
        worst = worst.max(difference);
        assert!(
            difference <= TINY_LOG_TOLERANCE,
            "{name}: {difference:.5} from numpy's answer:\n{prediction}\n{answer:?}"
        );
    }
    println!("largest log-probability difference from numpy's answers: {worst:.6}");
    let runs = app.metric("scorer_batch_size_count").await;
    assert!(runs < 19.0, "the 19 concurrent requests were never batched ({runs} runs)");
}
