//! The server must reproduce the model's reference Python pipeline.

use serde_json::json;

use crate::helpers::{TestApp, label_of, mri_images, probabilities, reference};

/// Largest allowed difference from the reference probabilities.
const TOLERANCE: f32 = 0.02;

#[tokio::test]
async fn all_17_real_mri_images_match_the_python_reference() {
    let app = TestApp::spawn().await;
    let reference = reference();
    let mut worst = 0f32;
    for (name, bytes) in mri_images() {
        let body = app.classify(bytes).await;
        let prediction = &body["predictions"][0];
        let expected = &reference.images[&name];
        assert_eq!(expected.label, expected.true_label, "the reference pipeline gets {name} right");
        assert_eq!(label_of(prediction), expected.true_label, "{name} misclassified: {prediction}");
        let actual = probabilities(prediction);
        assert_eq!(actual.len(), 4, "{name}: all four classes are listed");
        for (label, p) in &expected.probabilities {
            let difference = (actual[label] - p).abs();
            worst = worst.max(difference);
            assert!(difference <= TOLERANCE, "{name}/{label}: server {} vs reference {p}", actual[label]);
        }
        assert_eq!(prediction["confidence"], prediction["probabilities"][label_of(prediction)]);
    }
    println!("largest difference from the reference probabilities: {worst:.6}");
}

#[tokio::test]
async fn a_batch_request_answers_every_image_in_order() {
    use base64::Engine;
    let app = TestApp::spawn().await;
    let images = mri_images();
    let encoded: Vec<String> =
        images.iter().map(|(_, bytes)| base64::engine::general_purpose::STANDARD.encode(bytes)).collect();
    let response = app.score_json(&json!({ "images": encoded })).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let predictions = body["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), images.len());
    let reference = reference();
    for ((name, _), prediction) in images.iter().zip(predictions) {
        assert_eq!(label_of(prediction), reference.images[name].true_label, "{name}");
    }
}
