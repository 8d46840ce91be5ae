//! `scorer evaluate`: the real binary on the real MRI images, in-process and against a real
//! server over HTTP, with its report checked figure by figure and its HTML opened in Chromium.

use std::path::Path;

use serde_json::Value;

use crate::helpers::evaluation::{evaluate, evaluate_with_env, open_in_chromium, read_report};
use crate::helpers::{TempDir, TestApp, mri, reference, repo_root};

/// Per-image probabilities agree with the Python reference pipeline within this.
const REFERENCE_TOLERANCE: f64 = 0.02;

fn mri_by_class() -> String {
    repo_root().join("tests/data/mri-by-class").display().to_string()
}

/// Expected calibration error recomputed from the per-image answers in the report.
fn expected_calibration_error(images: &[Value]) -> f64 {
    let mut bins = [(0f64, 0f64); 10];
    for image in images {
        let confidence = image["confidence"].as_f64().unwrap();
        let bin = ((confidence * 10.0).ceil() as usize).clamp(1, 10) - 1;
        bins[bin].0 += f64::from(u8::from(image["label"] == image["true_label"]));
        bins[bin].1 += confidence;
    }
    // Σ n_b / N · |right_b / n_b − confidence_b / n_b| = Σ |right_b − confidence_b| / N
    bins.iter().map(|(right, confidence)| (right - confidence).abs()).sum::<f64>() / images.len() as f64
}

#[tokio::test]
async fn the_17_mri_images_by_class_folder_give_17_of_17_and_a_report_that_adds_up() {
    let out = TempDir::new("evaluate-local");
    let run = evaluate(&[&mri_by_class(), "--out", &out.path().display().to_string(), "--min-accuracy", "1.0"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("accuracy 1.0000 (17/17)"), "{run}");
    assert!(run.stdout.contains("Gate min_accuracy: 1.0000 against 1.0000: met"), "{run}");

    let report = read_report(out.path());
    assert_eq!(report["dataset"]["images"], 17);
    assert_eq!(report["dataset"]["labels_from"], "class_folders");
    assert_eq!(report["classes"], serde_json::json!(["glioma", "meningioma", "notumor", "pituitary"]));
    let metrics = &report["model"]["metrics"];
    assert_eq!(metrics["correct"], 17);
    assert_eq!(metrics["accuracy"], 1.0);
    assert_eq!(metrics["confusion"], serde_json::json!([[6, 0, 0, 0], [0, 5, 0, 0], [0, 0, 3, 0], [0, 0, 0, 3]]));
    let supports: Vec<u64> =
        metrics["per_class"].as_array().unwrap().iter().map(|c| c["support"].as_u64().unwrap()).collect();
    assert_eq!(supports, [6, 5, 3, 3]);
    assert_eq!(report["model"]["failed"], 0);
    assert!(report["model"]["images_per_second"].as_f64().unwrap() > 0.0);

    // Every image's answer is the model's own, through the server's pipeline: it matches the
    // Python reference, and the calibration error is what those answers give.
    let reference = reference();
    let images = report["images"].as_array().unwrap();
    assert_eq!(images.len(), 17);
    for image in images {
        let file = image["file"].as_str().unwrap();
        let name = Path::new(file).file_name().unwrap().to_str().unwrap();
        let expected = &reference.images[name];
        assert_eq!(image["true_label"], expected.true_label.as_str(), "{file}");
        assert_eq!(image["label"], expected.label.as_str(), "{file}");
        for (label, p) in &expected.probabilities {
            let ours = image["probabilities"][label].as_f64().unwrap();
            assert!((ours - f64::from(*p)).abs() <= REFERENCE_TOLERANCE, "{file}/{label}: {ours} vs {p}");
        }
    }
    let ece = metrics["expected_calibration_error"].as_f64().unwrap();
    // The report rounds each probability to f32 text; the sum keeps that within 1e-6.
    assert!((ece - expected_calibration_error(images)).abs() < 1e-6, "{ece}");
    let binned: u64 = metrics["reliability"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(binned, 17);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_a_running_server_gives_the_same_figures() {
    let app = TestApp::spawn().await;
    let local_out = TempDir::new("evaluate-same-local");
    let http_out = TempDir::new("evaluate-same-http");
    let local = evaluate(&[&mri_by_class(), "--out", &local_out.path().display().to_string()]);
    assert_eq!(local.code, Some(0), "{local}");
    let url = app.url("/score");
    for send_as in ["raw", "json"] {
        let remote = evaluate(&[
            &mri_by_class(),
            "--url",
            &url,
            "--send-as",
            send_as,
            "--out",
            &http_out.path().display().to_string(),
        ]);
        assert_eq!(remote.code, Some(0), "{remote}");
        let (local, remote) = (read_report(local_out.path()), read_report(http_out.path()));
        assert_eq!(remote["model"]["source"]["kind"], "http");
        assert_eq!(remote["model"]["source"]["name"], "brain-tumor-vgg16", "the server's model name is reported");
        assert_eq!(remote["classes"], local["classes"]);
        for figure in ["confusion", "accuracy", "per_class", "correct"] {
            assert_eq!(remote["model"]["metrics"][figure], local["model"]["metrics"][figure], "{figure} ({send_as})");
        }
        let difference = |a: &Value, b: &Value| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs();
        let ece = difference(
            &remote["model"]["metrics"]["expected_calibration_error"],
            &local["model"]["metrics"]["expected_calibration_error"],
        );
        assert!(ece < 1e-6, "{ece}");
        for (a, b) in local["images"].as_array().unwrap().iter().zip(remote["images"].as_array().unwrap()) {
            assert_eq!(a["file"], b["file"]);
            for (label, p) in a["probabilities"].as_object().unwrap() {
                assert!(difference(p, &b["probabilities"][label]) < 1e-6, "{} {label}", a["file"]);
            }
        }
    }
    // A key the server does not require is harmless; one it requires is sent from the variable.
    let keyed = crate::helpers::Launch::new().env("SCORER_API_KEY", "evaluation-key").spawn().await;
    let keyed_url = keyed.url("/score");
    let refused = evaluate(&[
        &mri_by_class(),
        "--url",
        &keyed_url,
        "--out",
        &http_out.path().display().to_string(),
        "--min-accuracy",
        "0.5",
    ]);
    assert_eq!(refused.code, Some(1), "without the key every image fails and the gate is unmet: {refused}");
    assert!(refused.stdout.contains("HTTP 401"), "{refused}");
    let with_key = evaluate_with_env(
        &[
            &mri_by_class(),
            "--url",
            &keyed_url,
            "--key-env",
            "EVAL_KEY",
            "--out",
            &http_out.path().display().to_string(),
        ],
        &[("EVAL_KEY", "evaluation-key")],
    );
    assert_eq!(with_key.code, Some(0), "{with_key}");
    assert!(!with_key.stdout.contains("evaluation-key") && !with_key.stderr.contains("evaluation-key"));
}

#[tokio::test]
async fn bad_input_is_named_the_run_goes_on_and_the_gate_fails() {
    let data = TempDir::new("evaluate-bad");
    std::fs::create_dir_all(data.path().join("scans")).unwrap();
    let copy = |name: &str, to: &str| std::fs::write(data.path().join(to), mri(name)).unwrap();
    copy("Te-gl_0011.jpg", "scans/a.jpg");
    copy("Te-me_0017.jpg", "scans/b.jpg");
    copy("Te-pi_0015.jpg", "scans/c.jpg");
    copy("Te-no_0022.jpg", "scans/d.jpg");
    let whole = mri("Te-gl_0012.jpg");
    std::fs::write(data.path().join("scans/broken.jpg"), &whole[..whole.len() / 2]).unwrap();
    std::fs::write(
        data.path().join("labels.csv"),
        "file,label\nscans/a.jpg,glioma\nscans/b.jpg,meningioma\nscans/c.jpg,glioma\nscans/broken.jpg,glioma\n\
         scans/d.jpg,astrocytoma\nscans/gone.jpg,notumor\n",
    )
    .unwrap();
    let out = TempDir::new("evaluate-bad-out");
    let run = evaluate(&[
        &data.path().display().to_string(),
        "--out",
        &out.path().display().to_string(),
        "--min-accuracy",
        "0.9",
    ]);
    assert_eq!(run.code, Some(1), "an unmet gate exits 1: {run}");
    assert!(run.stderr.contains("scans/gone.jpg: listed but not found"), "{run}");
    for expected in [
        "scans/broken.jpg: cannot decode the JPEG image: the file is truncated",
        "scans/d.jpg: label `astrocytoma` is not one of the model's labels",
        "Gate min_accuracy: 0.6667 against 0.9000: NOT MET",
        "Gate max_failed_images: 1.0000 against 0.0000: NOT MET",
    ] {
        assert!(run.stdout.contains(expected), "stdout lacks `{expected}`: {run}");
    }

    let report = read_report(out.path());
    assert_eq!(report["dataset"]["labels_from"], "labels_csv");
    assert_eq!(report["passed"], false);
    let metrics = &report["model"]["metrics"];
    assert_eq!((metrics["scored"].as_u64(), metrics["correct"].as_u64()), (Some(3), Some(2)));
    assert_eq!(report["model"]["failed"], 1);
    // c.jpg is a pituitary scan labelled glioma: a glioma row with a pituitary prediction.
    assert_eq!(metrics["confusion"][0][3], 1, "{}", metrics["confusion"]);

    // The page opens in a real browser without errors, with its plots and the wrong images' thumbnails.
    let page = open_in_chromium(&out.path().join("report.html"));
    assert_eq!(page["svgs"], 3, "{page}");
    assert_eq!(page["images"], 2, "thumbnails of c.jpg (wrong) and broken.jpg (failed): {page}");
    let text = page["text"].as_str().unwrap();
    for expected in ["scans/c.jpg", "true glioma", "pituitary", "failed:", "astrocytoma", "NOT MET"] {
        assert!(text.contains(expected), "the page lacks `{expected}`:\n{text}");
    }
}

#[tokio::test]
async fn an_empty_folder_or_a_bad_threshold_is_refused_with_a_message() {
    let empty = TempDir::new("evaluate-empty");
    std::fs::create_dir_all(empty.path().join("glioma")).unwrap();
    let run = evaluate(&[&empty.path().display().to_string()]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("no labelled images in") && run.stderr.contains("labels.csv"), "{run}");

    let run = evaluate(&[&mri_by_class(), "--min-agreement", "0.99"]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("--min-agreement needs --compare-model-dir"), "{run}");
    let run = evaluate(&[&mri_by_class(), "--min-accuracy", "95"]);
    assert_eq!(run.code, Some(2), "{run}");

    let wrong_labels = TempDir::new("evaluate-wrong-labels");
    std::fs::create_dir_all(wrong_labels.path().join("cat")).unwrap();
    std::fs::write(wrong_labels.path().join("cat/a.jpg"), mri("Te-gl_0010.jpg")).unwrap();
    let run = evaluate(&[&wrong_labels.path().display().to_string()]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("none of the labels in the folder (cat)"), "{run}");
}

/// A stand-in for an Azure ML endpoint that records what it is sent: the first request gets
/// Azure's 424 (the container answered 503), the others a prediction.
fn fake_endpoint(requests: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/score", listener.local_addr().unwrap());
    let recorder = std::thread::spawn(move || {
        let mut heads = Vec::new();
        for (n, stream) in listener.incoming().take(requests).enumerate() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                head.push_str(&line.to_ascii_lowercase());
            }
            let length: usize =
                head.lines().find_map(|l| l.strip_prefix("content-length: ")).map_or(0, |v| v.trim().parse().unwrap());
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let (status, extra, body) = if n == 0 {
                (
                    "424 Failed Dependency",
                    "ms-azureml-model-error-statuscode: 503\r\n",
                    r#"{"message":"queue full"}"#.to_owned(),
                )
            } else {
                let prediction = r#"{"label":"glioma","confidence":0.9,"probabilities":{"glioma":0.9,"notumor":0.1}}"#;
                (
                    "200 OK",
                    "",
                    format!(r#"{{"predictions":[{prediction}],"model":{{"name":"remote-model","version":"7"}}}}"#),
                )
            };
            write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            heads.push(head);
        }
        heads
    });
    (url, recorder)
}

#[tokio::test]
async fn over_http_the_deployment_header_and_key_are_sent_and_azure_errors_are_named() {
    let data = TempDir::new("evaluate-remote");
    for name in ["a.jpg", "b.jpg", "c.jpg"] {
        std::fs::write(data.path().join(name), mri("Te-gl_0011.jpg")).unwrap();
    }
    std::fs::write(data.path().join("labels.csv"), "a.jpg,glioma\nb.jpg,glioma\nc.jpg,notumor\n").unwrap();
    let (url, recorder) = fake_endpoint(3);
    let out = TempDir::new("evaluate-remote-out");
    let run = evaluate_with_env(
        &[
            &data.path().display().to_string(),
            "--url",
            &url,
            "--deployment",
            "int8",
            "--concurrency",
            "1",
            "--out",
            &out.path().display().to_string(),
        ],
        &[("SCORING_KEY", "endpoint-key")],
    );
    assert_eq!(run.code, Some(0), "no gate was asked for: {run}");
    let heads = recorder.join().unwrap();
    assert_eq!(heads.len(), 3);
    for head in &heads {
        assert!(head.contains("azureml-model-deployment: int8\r\n"), "{head}");
        assert!(head.contains("authorization: bearer endpoint-key\r\n"), "{head}");
        assert!(head.contains("content-type: application/octet-stream\r\n"), "{head}");
    }
    assert!(run.stdout.contains("HTTP 424 (the model server answered 503): queue full"), "{run}");
    let report = read_report(out.path());
    assert_eq!(report["model"]["source"]["name"], "remote-model");
    assert_eq!(report["model"]["source"]["version"], "7");
    assert_eq!(report["model"]["failed"], 1);
    assert_eq!(report["model"]["metrics"]["scored"], 2);
    assert!(!run.stdout.contains("endpoint-key") && !run.stderr.contains("endpoint-key"), "the key is never printed");
}
