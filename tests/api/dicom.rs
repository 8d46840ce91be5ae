//! DICOM in: the real files in pydicom's wheel against a pydicom + Pillow reference
//! (scripts/make_dicom_reference.py), every transport, the limits read from the header, and no
//! attribute value in any log line or error body.

use std::collections::HashMap;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dicom_dictionary_std::tags;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::{Launch, TestApp, label_of, probabilities, repo_root};

/// Largest allowed difference from the reference probabilities.
const TOLERANCE: f32 = 0.02;

#[derive(Deserialize)]
struct Reference {
    files: HashMap<String, ReferenceFile>,
}

#[derive(Deserialize)]
struct ReferenceFile {
    status: u16,
    code: Option<String>,
    sop_instance_uid: Option<String>,
    #[serde(default)]
    frames: Vec<ReferenceFrame>,
}

#[derive(Deserialize)]
struct ReferenceFrame {
    frame: usize,
    label: String,
    probabilities: HashMap<String, f32>,
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/dicom_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn dicom_dir() -> PathBuf {
    repo_root().join("tests/data/dicom")
}

fn dicom(name: &str) -> Vec<u8> {
    let path = dicom_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh --test-data)", path.display()))
}

#[tokio::test]
async fn every_pydicom_file_matches_the_reference_or_is_refused_with_its_code() {
    let app = TestApp::spawn().await;
    let reference = reference();
    assert!(reference.files.len() >= 20, "the reference covers the pydicom files");
    let (mut accepted, mut worst) = (0, 0f32);
    let mut names: Vec<_> = reference.files.keys().cloned().collect();
    names.sort();
    for name in names {
        let expected = &reference.files[&name];
        let response = app.score_raw("application/dicom", dicom(&name)).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, expected.status, "{name}: {body}");
        if status != 200 {
            assert_eq!(body["code"].as_str(), expected.code.as_deref(), "{name}: {body}");
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: {body}");
            continue;
        }
        accepted += 1;
        let predictions = body["predictions"].as_array().unwrap();
        assert_eq!(predictions.len(), expected.frames.len(), "{name}: one prediction per frame");
        for (prediction, frame) in predictions.iter().zip(&expected.frames) {
            assert_eq!(prediction["dicom"]["frame"], frame.frame, "{name}");
            assert_eq!(prediction["dicom"]["frames"], expected.frames.len(), "{name}");
            assert_eq!(
                prediction["dicom"]["sop_instance_uid"].as_str(),
                expected.sop_instance_uid.as_deref(),
                "{name}"
            );
            let actual = probabilities(prediction);
            for (label, p) in &frame.probabilities {
                let difference = (actual[label] - p).abs();
                worst = worst.max(difference);
                assert!(
                    difference <= TOLERANCE,
                    "{name} frame {}: {label} {} vs reference {p}",
                    frame.frame,
                    actual[label]
                );
            }
            let confident = frame.probabilities.values().any(|&p| p > 0.6);
            if confident {
                assert_eq!(label_of(prediction), frame.label, "{name} frame {}", frame.frame);
            }
        }
    }
    assert!(accepted >= 12, "most files are accepted ({accepted})");
    println!("{accepted} DICOM files accepted; largest difference from the reference: {worst:.6}");
}

#[tokio::test]
async fn a_dicom_file_is_read_from_every_transport_alike() {
    let app = TestApp::spawn().await;
    let file = dicom("MR_small.dcm");
    let direct: Value = app.score_raw("application/dicom", file.clone()).await.json().await.unwrap();
    let expected = probabilities(&direct["predictions"][0]);

    let multipart = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(file.clone()).file_name("MR_small.dcm"));
    let responses = vec![
        ("octet-stream (sniffed)", app.score_raw("application/octet-stream", file.clone()).await),
        ("no content type", app.score_request().body(file.clone()).send().await.unwrap()),
        ("base64 in JSON", app.score_json(&json!({"image": STANDARD.encode(&file)})).await),
        ("multipart", app.score_request().multipart(multipart).send().await.unwrap()),
    ];
    for (transport, response) in responses {
        assert_eq!(response.status(), 200, "{transport}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(probabilities(&body["predictions"][0]), expected, "{transport}");
        assert_eq!(body["predictions"][0]["dicom"], direct["predictions"][0]["dicom"], "{transport}");
    }

    // The V2 BYTES input takes a single-frame file; a multi-frame one belongs on /score.
    let model = "brain-tumor-vgg16";
    let infer = |bytes: &[u8]| json!({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [STANDARD.encode(bytes)]}]});
    let url = app.url(&format!("/v2/models/{model}/infer"));
    let single = app.client.post(&url).json(&infer(&file)).send().await.unwrap();
    assert_eq!(single.status(), 200);
    let multi = app.client.post(&url).json(&infer(&dicom("SC_rgb_rle_2frame.dcm"))).send().await.unwrap();
    assert_eq!(multi.status(), 415);
    let error: Value = multi.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("multi-frame"), "{error}");
}

/// MR_small.dcm with Rows and Columns rewritten to 65535: the pixel data is far too short for
/// that, so only a check made from the header, before decoding, can answer 413.
fn declaring_a_huge_image(mut file: Vec<u8>) -> Vec<u8> {
    for (group_element, name) in [([0x28, 0x00, 0x10, 0x00], "Rows"), ([0x28, 0x00, 0x11, 0x00], "Columns")] {
        // Explicit VR little endian: tag, "US", length 2, value.
        let mut needle = group_element.to_vec();
        needle.extend_from_slice(b"US\x02\x00");
        let at = file.windows(needle.len()).position(|w| w == needle).unwrap_or_else(|| panic!("{name} not found"));
        file[at + 8..at + 10].copy_from_slice(&[0xff, 0xff]);
    }
    file
}

#[tokio::test]
async fn limits_are_checked_from_the_header_before_decoding() {
    let app = Launch::new().env("SCORER_MAX_IMAGES_PER_REQUEST", 8).spawn().await;
    let response = app.score_raw("application/dicom", declaring_a_huge_image(dicom("MR_small.dcm"))).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "image_too_large", "{body}");
    assert!(body["message"].as_str().unwrap().contains("65535x65535"), "{body}");

    // 30 frames count as 30 images against max_images_per_request.
    let response = app.score_raw("application/dicom", dicom("examples_ybr_color.dcm")).await;
    assert_eq!(response.status(), 413);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "too_many_images");
    // Frames of several files add up too: 2 + 7 single images is 9 > 8.
    let mut images = vec![STANDARD.encode(dicom("SC_rgb_rle_2frame.dcm"))];
    images.extend(std::iter::repeat_n(STANDARD.encode(dicom("MR_small.dcm")), 7));
    let response = app.score_json(&json!({ "images": images })).await;
    assert_eq!(response.status(), 413);
    images.pop();
    let response = app.score_json(&json!({ "images": images })).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let frames: Vec<&Value> = body["predictions"].as_array().unwrap().iter().map(|p| &p["dicom"]["frame"]).collect();
    assert_eq!(frames, [&json!(1), &json!(2), &json!(1), &json!(1), &json!(1), &json!(1), &json!(1), &json!(1)]);
}

/// The attribute values that identify a patient or a study, as the file holds them.
fn identifying_values(name: &str) -> Vec<String> {
    let object =
        dicom_object::OpenFileOptions::new().read_until(tags::PIXEL_DATA).open_file(dicom_dir().join(name)).unwrap();
    let identifying = [
        tags::PATIENT_NAME,
        tags::PATIENT_ID,
        tags::PATIENT_BIRTH_DATE,
        tags::STUDY_DATE,
        tags::STUDY_INSTANCE_UID,
        tags::SERIES_INSTANCE_UID,
        tags::INSTITUTION_NAME,
        tags::REFERRING_PHYSICIAN_NAME,
        tags::ACCESSION_NUMBER,
    ];
    identifying
        .iter()
        .filter_map(|&tag| object.element_opt(tag).ok().flatten().and_then(|e| e.to_str().ok()))
        .map(|value| value.trim_end_matches(['\0', ' ']).to_owned())
        .filter(|value| value.len() >= 4)
        .collect()
}

#[tokio::test]
async fn no_attribute_value_reaches_a_log_line_or_an_error_body() {
    let app = Launch::new().env("RUST_LOG", "debug").spawn().await;
    let mut values = Vec::new();
    let mut bodies = String::new();
    for name in ["MR_small.dcm", "CT_small.dcm", "MR_truncated.dcm", "JPEG2000.dcm", "rtplan.dcm"] {
        values.extend(identifying_values(name));
        let response = app.score_raw("application/dicom", dicom(name)).await;
        let mut body: Value = response.json().await.unwrap();
        // The SOP Instance UID is returned by design (it can embed a date, as these do); the
        // rest of the body must hold no attribute value.
        for prediction in body["predictions"].as_array_mut().into_iter().flatten() {
            prediction["dicom"]["sop_instance_uid"] = Value::Null;
        }
        bodies.push_str(&body.to_string());
    }
    let huge = app.score_raw("application/dicom", declaring_a_huge_image(dicom("MR_small.dcm"))).await;
    bodies.push_str(&huge.text().await.unwrap());
    assert!(values.len() >= 8, "the files carry identifying values to look for: {values:?}");
    let logs = app.logs_containing("status=413").await;
    for value in &values {
        assert!(!logs.contains(value.as_str()), "the log holds `{value}`");
        assert!(!bodies.contains(value.as_str()), "a response holds `{value}`");
    }
}
