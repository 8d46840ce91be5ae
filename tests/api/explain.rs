//! Explanations: occlusion maps against a Python run over the reference pipeline
//! (scripts/make_occlusion_reference.py), and their masked copies admitted like any other image.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::{Launch, TestApp, label_of, mri, repo_root};

/// Largest allowed difference of a cell's drop from the reference.
const TOLERANCE: f32 = 0.02;

#[derive(Deserialize)]
struct Reference {
    grid: usize,
    images: HashMap<String, ReferenceMap>,
}

#[derive(Deserialize)]
struct ReferenceMap {
    class: String,
    drops: Vec<Vec<f32>>,
}

#[tokio::test]
async fn the_occlusion_map_matches_the_python_reference_for_two_mri_images() {
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/occlusion_reference.json")).unwrap();
    let reference: Reference = serde_json::from_str(&text).unwrap();
    assert_eq!(reference.images.len(), 2);
    let app = TestApp::spawn().await;
    let mut worst = 0f32;
    for (name, expected) in &reference.images {
        // One through the query parameter, one through the JSON field.
        let response = if name.contains("gl") {
            app.score_request()
                .query(&[("explain", "true")])
                .header("content-type", "image/jpeg")
                .body(mri(name))
                .send()
                .await
                .unwrap()
        } else {
            app.score_json(&json!({"image": STANDARD.encode(mri(name)), "explain": true})).await
        };
        assert_eq!(response.status(), 200, "{name}");
        let body: Value = response.json().await.unwrap();
        let prediction = &body["predictions"][0];
        let explanation = &prediction["explanation"];
        assert_eq!(label_of(prediction), expected.class, "{name}");
        assert_eq!(explanation["class"], expected.class.as_str(), "{name}");
        assert_eq!(explanation["method"], "occlusion");
        assert_eq!(explanation["grid"], json!({"rows": reference.grid, "columns": reference.grid}));
        let drops: Vec<Vec<f32>> = serde_json::from_value(explanation["drops"].clone()).unwrap();
        assert_eq!(drops.len(), reference.grid, "{name}");
        for (row, (actual, expected)) in drops.iter().zip(&expected.drops).enumerate() {
            assert_eq!(actual.len(), reference.grid);
            for (column, (a, e)) in actual.iter().zip(expected).enumerate() {
                worst = worst.max((a - e).abs());
                assert!((a - e).abs() <= TOLERANCE, "{name} cell ({row}, {column}): {a} vs reference {e}");
            }
        }
        // The overlay is a PNG of the model's input size.
        let png = STANDARD.decode(explanation["overlay_png"].as_str().unwrap()).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}");
        let (width, height) =
            (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()));
        assert_eq!((width, height), (240, 240), "{name}");
    }
    // The glioma image's map is not flat: one cell matters far more than the rest.
    let glioma = &reference.images["Te-gl_0010.jpg"].drops;
    assert!(glioma.iter().flatten().any(|&d| d > 0.1), "the reference map has a clear peak");
    println!("largest difference from the reference map: {worst:.6}");
}

#[tokio::test]
async fn explain_options_are_checked_and_plain_requests_carry_no_explanation() {
    let app = TestApp::spawn().await;
    let plain = app.classify(mri("Te-no_0022.jpg")).await;
    assert!(plain["predictions"][0].get("explanation").is_none(), "{plain}");
    for query in
        ["explain=maybe", "explain=true&explain_grid=1", "explain=true&explain_grid=11", "explain=1&explain_grid=x"]
    {
        let response = app
            .client
            .post(app.url(&format!("/score?{query}")))
            .header("content-type", "image/jpeg")
            .body(mri("Te-no_0022.jpg"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(response.json::<Value>().await.unwrap()["code"], "invalid_explain", "{query}");
    }
}

/// An explained image holds (cells + 1) queue places until its map is done, so it can neither
/// starve other callers nor get past the queue's limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_explained_image_holds_cells_plus_one_places_in_the_queue() {
    let app = Launch::new().env("SCORER_QUEUE_CAPACITY", 70).env("SCORER_MAX_IMAGES_PER_REQUEST", 8).spawn().await;
    // 8×8 + 1 = 65 places: two such images can never fit in 70.
    let two = json!({"images": [STANDARD.encode(mri("Te-gl_0010.jpg")), STANDARD.encode(mri("Te-me_0016.jpg"))], "explain": true});
    let response = app.score_json(&two).await;
    assert_eq!(response.status(), 413);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "too_many_images");

    let explained = {
        let request = app
            .score_request()
            .query(&[("explain", "true")])
            .header("content-type", "image/jpeg")
            .body(mri("Te-gl_0010.jpg"));
        tokio::spawn(async move { request.send().await.unwrap() })
    };
    let started = Instant::now();
    while app.metric("scorer_images_in_flight").await < 65.0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the explained image was never admitted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 5 places are left: a request for 6 images is refused at once, one for 5 is answered.
    let six = json!({"images": vec![STANDARD.encode(mri("Te-no_0022.jpg")); 6]});
    let refused = app.score_json(&six).await;
    assert_eq!(refused.status(), 503, "the queue's limit holds while the map is made");
    let five = json!({"images": vec![STANDARD.encode(mri("Te-no_0022.jpg")); 5]});
    let answered = app.score_json(&five).await;
    assert_eq!(answered.status(), 200, "other callers are served beside the map");
    assert_eq!(app.metric("scorer_images_in_flight").await, 65.0, "the map still holds its places");

    let response = explained.await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["predictions"][0]["explanation"]["drops"].as_array().unwrap().len(), 8);
    assert_eq!(app.metric("scorer_images_in_flight").await, 0.0);
}
