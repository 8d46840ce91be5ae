//! A second, differently shaped model through the same code: NCHW, 1000 classes, fixed batch 1.

use serde_json::Value;

use crate::helpers::{Launch, TempDir, mri, repo_root, squeezenet_onnx};

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
