//! The Open Inference Protocol front end beside `/score`: one queue, one batcher, each request
//! its own answer. (Triton's own client drives the protocol in tests/v2/.)

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::helpers::{TestApp, label_of, mri_images, probabilities};

/// Triton's classification strings, `"value:index:label"`, as label → value.
fn classified(output: &Value) -> HashMap<String, f32> {
    output["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|element| {
            let text = element.as_str().unwrap();
            let mut parts = text.splitn(3, ':');
            let value: f32 = parts.next().unwrap().parse().unwrap();
            let _index = parts.next().unwrap();
            (parts.next().unwrap().to_owned(), value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_mixed_score_and_v2_requests_each_get_their_own_answer_in_shared_batches() {
    let app = TestApp::spawn().await;
    let mut images = mri_images();
    images.extend(mri_images().into_iter().take(15).map(|(name, bytes)| (format!("again {name}"), bytes)));
    assert_eq!(images.len(), 32);
    let mut alone = HashMap::new();
    for (name, bytes) in mri_images() {
        alone.insert(name, app.classify(bytes).await["predictions"][0].clone());
    }
    let model = app.get("/ready").await.json::<Value>().await.unwrap()["model"]["name"].as_str().unwrap().to_owned();

    let tasks: Vec<_> = images
        .into_iter()
        .enumerate()
        .map(|(n, (name, bytes))| {
            let original = name.trim_start_matches("again ").to_owned();
            let request = if n % 2 == 0 {
                app.score_request().header("content-type", "image/jpeg").body(bytes)
            } else {
                let body = json!({
                    "id": format!("request-{n}"),
                    "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [STANDARD.encode(&bytes)]}],
                    "outputs": [{"name": "dense_3", "parameters": {"classification": 4}}],
                });
                app.client.post(app.url(&format!("/v2/models/{model}/infer"))).json(&body)
            };
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200, "{name}");
                let body: Value = response.json().await.unwrap();
                if n % 2 == 0 {
                    (original, label_of(&body["predictions"][0]).to_owned(), probabilities(&body["predictions"][0]))
                } else {
                    assert_eq!(body["id"], format!("request-{n}"), "the request id is echoed");
                    let output = &body["outputs"][0];
                    assert_eq!(output["shape"], json!([1, 4]), "{body}");
                    let top = output["data"][0].as_str().unwrap().rsplit(':').next().unwrap().to_owned();
                    (original, top, classified(output))
                }
            })
        })
        .collect();
    for task in tasks {
        let (name, label, answered) = task.await.unwrap();
        let expected = &alone[&name];
        assert_eq!(label, label_of(expected), "{name}");
        for (class, p) in probabilities(expected) {
            assert!((answered[&class] - p).abs() < 1e-3, "{name}/{class}: {p} alone, {} together", answered[&class]);
        }
    }
    // Both front ends fed the same batches.
    let mixed = app.metric("scorer_batches_total{front_ends=\"mixed\"}").await;
    assert!(mixed >= 1.0, "no model run held images from both front ends");
    assert_eq!(app.metric("scorer_images_in_flight").await, 0.0);
}

#[tokio::test]
async fn v2_errors_come_in_v2_shape_with_the_same_codes() {
    let app = TestApp::spawn().await;
    let infer = |body: Value| app.client.post(app.url("/v2/models/brain-tumor-vgg16/infer")).json(&body).send();
    let cases = [
        (
            json!({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "data": vec![0.0; 10]}]}),
            400,
            "invalid_tensor",
        ),
        (json!({"inputs": [{"name": "input", "shape": [1], "datatype": "INT64", "data": [1]}]}), 400, "invalid_tensor"),
        (json!({"inputs": []}), 400, "invalid_tensor"),
        (
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["bm90IGFuIGltYWdl"]}]}),
            400,
            "unsupported_image_format",
        ),
        (json!({"nothing": true}), 400, "invalid_json"),
    ];
    for (body, status, code) in cases {
        let response = infer(body.clone()).await.unwrap();
        assert_eq!(response.status(), status, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["code"], code, "{body}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{answer}");
    }
    let unknown = app.get("/v2/models/other/versions/9").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<Value>().await.unwrap()["code"], "model_not_found");
    let no_route = app.get("/v2/nothing/here").await;
    assert_eq!(no_route.status(), 404);
    assert_eq!(no_route.json::<Value>().await.unwrap()["code"], "not_found");
}

#[tokio::test]
async fn v2_routes_need_the_key_and_its_health_routes_stay_open() {
    let app = crate::helpers::Launch::new().env("SCORER_API_KEY", "v2-secret").spawn().await;
    for open in ["/v2/health/live", "/v2/health/ready"] {
        assert_eq!(app.get(open).await.status(), 200, "{open}");
    }
    for closed in ["/v2", "/v2/models/brain-tumor-vgg16", "/v2/models/brain-tumor-vgg16/ready"] {
        let response = app.get(closed).await;
        assert_eq!(response.status(), 401, "{closed}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string() && body["code"] == "unauthorized", "{closed}: {body}");
    }
    let with_key = app.client.get(app.url("/v2")).bearer_auth("v2-secret").send().await.unwrap();
    assert_eq!(with_key.status(), 200);
    assert_eq!(with_key.json::<Value>().await.unwrap()["extensions"], json!(["classification", "binary_tensor_data"]));
}
