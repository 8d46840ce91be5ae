//! Every way a client can send images gets the same answer.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, label_of, log_distance, log_probabilities, mri, nearest_reference, probabilities, reference,
};
use crate::images;

const GLIOMA: &str = "Te-gl_0010.jpg";

fn assert_glioma(body: &Value) {
    let predictions = body["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 1, "{body}");
    assert_eq!(label_of(&predictions[0]), "glioma", "{body}");
    assert_eq!(body["model"]["name"], "brain-tumor-vgg16");
}

#[tokio::test]
async fn json_base64_with_and_without_a_data_url() {
    let app = TestApp::spawn().await;
    let encoded = STANDARD.encode(mri(GLIOMA));
    for image in [encoded.clone(), format!("data:image/jpeg;base64,{encoded}")] {
        let response = app.score_json(&json!({ "image": image })).await;
        assert_eq!(response.status(), 200);
        assert_glioma(&response.json().await.unwrap());
    }
}

#[tokio::test]
async fn raw_bytes_by_content_type_or_by_sniffing() {
    let app = TestApp::spawn().await;
    let jpeg = mri(GLIOMA);
    let png = images::png(&jpeg);
    for (content_type, body) in [
        ("image/jpeg", jpeg.clone()),
        ("image/png", png.clone()),
        ("application/octet-stream", png.clone()),
        // A client that mislabels the bytes still gets an answer: the format is sniffed.
        ("image/png", jpeg.clone()),
    ] {
        let response = app.score_raw(content_type, body).await;
        assert_eq!(response.status(), 200, "{content_type}");
        assert_glioma(&response.json().await.unwrap());
    }
    // No content type at all.
    let response = app.score_request().body(jpeg).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_glioma(&response.json().await.unwrap());
}

#[tokio::test]
async fn multipart_file_parts_like_curl_dash_f() {
    let app = TestApp::spawn().await;
    let one = Form::new().part("file", Part::bytes(mri(GLIOMA)).file_name(GLIOMA).mime_str("image/jpeg").unwrap());
    let response = app.score_request().multipart(one).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_glioma(&response.json().await.unwrap());

    let several = Form::new()
        .text("note", "form fields that are not files are ignored")
        .part("a", Part::bytes(mri("Te-pi_0014.jpg")).file_name("a.jpg"))
        .part("b", Part::bytes(mri("Te-no_0021.jpg")).file_name("b.jpg"))
        .part("c", Part::bytes(mri("Te-me_0016.jpg")).file_name("c.jpg"));
    let response = app.score_request().multipart(several).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let predictions = body["predictions"].as_array().unwrap();
    let labels: Vec<&str> = predictions.iter().map(label_of).collect();
    assert_eq!(labels, ["pituitary", "notumor", "meningioma"]);
    // Each answer is its own part's, by its probabilities, not only by its label.
    let reference = reference();
    let nearest: Vec<&str> = predictions.iter().map(|p| nearest_reference(p, &reference).0).collect();
    assert_eq!(nearest, ["Te-pi_0014.jpg", "Te-no_0021.jpg", "Te-me_0016.jpg"]);
}

#[tokio::test]
async fn grayscale_rgba_16_bit_progressive_and_bmp_images_work() {
    let app = TestApp::spawn().await;
    let jpeg = mri(GLIOMA);
    let original = &app.classify(jpeg.clone()).await["predictions"][0];
    let original_glioma = probabilities(original)["glioma"];
    for (kind, bytes) in [
        ("grayscale PNG", images::grayscale_png(&jpeg)),
        ("RGBA PNG", images::rgba_png(&jpeg)),
        ("16-bit PNG", images::rgb16_png(&jpeg)),
        ("progressive JPEG", images::progressive_jpeg(&jpeg)),
        ("BMP", images::bmp(&jpeg)),
    ] {
        let body = app.classify(bytes).await;
        assert_glioma(&body);
        let glioma = probabilities(&body["predictions"][0])["glioma"];
        assert!((glioma - original_glioma).abs() < 0.02, "{kind}: {glioma} vs {original_glioma}");
    }
}

/// The JPEG's decoded pixels, stored losslessly, must give the JPEG's answer to the last digit:
/// only then can "alpha dropped" (Pillow's `convert("RGB")`, and the server's) be told from
/// "alpha composited", which halves every level of this half-transparent image.
#[tokio::test]
async fn lossless_copies_of_the_decoded_jpeg_answer_exactly_as_the_jpeg() {
    let app = TestApp::spawn().await;
    let jpeg = mri(GLIOMA);
    let original = app.classify(jpeg.clone()).await["predictions"][0].clone();
    let expected = probabilities(&original);
    for (kind, bytes) in [
        ("PNG", images::png(&jpeg)),
        ("BMP", images::bmp(&jpeg)),
        ("RGBA PNG, alpha 128", images::rgba_png(&jpeg)),
        ("16-bit PNG", images::rgb16_png(&jpeg)),
    ] {
        let prediction = &app.classify(bytes).await["predictions"][0];
        let difference = log_distance(&log_probabilities(prediction), &expected);
        assert!(
            difference <= 1e-5,
            "{kind}: log-probabilities {difference:e} from the JPEG's:\n{prediction}\n{original}"
        );
    }
}
