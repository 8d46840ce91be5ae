//! Concurrent requests are batched together and each gets exactly its own answer.

use std::collections::HashMap;

use crate::helpers::{TestApp, label_of, mri_images, probabilities};
use crate::images;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_requests_each_get_their_own_answer() {
    let app = TestApp::spawn().await;
    // 32 different images: the 17 originals and 15 of them mirrored.
    let originals = mri_images();
    let mut requests: Vec<(String, Vec<u8>)> = originals.clone();
    requests
        .extend(originals.iter().take(15).map(|(name, jpeg)| (format!("mirrored {name}"), images::mirrored_png(jpeg))));
    assert_eq!(requests.len(), 32);

    // Each image alone first: the expected answer.
    let mut alone = HashMap::new();
    for (name, bytes) in &requests {
        let body = app.classify(bytes.clone()).await;
        alone.insert(name.clone(), body["predictions"][0].clone());
    }

    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(name, bytes)| {
            let request = app.score_request().header("content-type", "application/octet-stream").body(bytes);
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200, "{name}");
                let body: serde_json::Value = response.json().await.unwrap();
                (name, body["predictions"][0].clone())
            })
        })
        .collect();
    for task in tasks {
        let (name, together) = task.await.unwrap();
        let expected = &alone[&name];
        assert_eq!(label_of(&together), label_of(expected), "{name}");
        let (together, expected) = (probabilities(&together), probabilities(expected));
        for (label, p) in &expected {
            assert!((together[label] - p).abs() < 1e-3, "{name}/{label}: {} alone, {} batched", p, together[label]);
        }
    }

    // The concurrent burst must actually have been batched.
    let runs_of_one = app.metric("scorer_batch_size_bucket{le=\"1\"}").await;
    let runs = app.metric("scorer_batch_size_count").await;
    assert!(runs_of_one < runs, "no run held more than one image ({runs} runs)");
}
