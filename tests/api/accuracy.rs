//! The server must reproduce the model's reference Python pipeline: the same pixels into the
//! model, the same probabilities out (scripts/make_reference.py made the reference).

use serde_json::json;

use crate::helpers::{
    TestApp, default_model_dir, label_of, log_distance, log_probabilities, model_input, mri_images, nearest_reference,
    probabilities, reference, repo_root,
};

/// Largest allowed difference from the reference probabilities.
const TOLERANCE: f32 = 0.02;

/// How close the server must come to the reference pipeline on one kind of image. The resize is
/// Pillow's to the bit (model::resample), so only the JPEG decoder (zune-jpeg here,
/// libjpeg-turbo in Pillow) leaves a difference; each bound is set from the worst case measured
/// on this kind of image, noted beside it.
#[derive(Debug)]
struct Parity {
    /// No model-input value further from Pillow's than this, in grey levels.
    worst_level: f32,
    /// At most this share of the values more than one level away.
    share_over_one: f64,
    /// Each channel's mean within this many levels of Pillow's.
    channel_mean: f64,
    /// Every class's log-probability within this of the reference's.
    log_probability: f64,
}

fn parity(file: &str) -> Parity {
    if file.ends_with(".png") {
        // Lossless: decoded alike, so the same pixels and the same answer (measured: 0 levels,
        // 0 in log-probability). The reference's probabilities come from the CPU that made them;
        // another CPU's kernels may move the last digits, hence not 0.
        Parity { worst_level: 0.0, share_over_one: 0.0, channel_mean: 0.001, log_probability: 2e-3 }
    } else if file.contains("/colour/") {
        // A 4:2:0 colour JPEG: the decoders upsample the chroma differently, up to 4 levels
        // apart before the resize (measured after it: 3 levels, 0.45 % of values over one,
        // channel means 0.14 apart, 0.059 in log-probability).
        Parity { worst_level: 3.0, share_over_one: 0.005, channel_mean: 0.25, log_probability: 0.1 }
    } else {
        // The grey MRI JPEGs: the decoders' IDCTs round a level apart in about 0.5 % of values,
        // and two such can meet in the resize (measured: 2 levels for 3 values of 17 x 172,800,
        // 0.026 in log-probability).
        Parity { worst_level: 2.0, share_over_one: 0.0001, channel_mean: 0.05, log_probability: 0.05 }
    }
}

#[test]
fn the_model_gets_the_pixels_pillow_gives_it() {
    let reference = reference();
    let mut names: Vec<&String> = reference.tensors.keys().collect();
    names.sort();
    assert_eq!(names.len(), 19, "the 17 MRI images and the two colour images");
    let files: Vec<_> = names.iter().map(|name| repo_root().join(&reference.tensors[*name].file)).collect();
    let tensors = model_input(&default_model_dir(), &files);

    for name in names {
        let expected = &reference.tensors[name];
        let pillow = reference.pillow_pixels(name);
        let (shape, ours) = &tensors[name];
        assert_eq!(shape, &[1, 240, 240, 3], "{name}: one NHWC sample");
        assert_eq!(&expected.shape, &[240, 240, 3]);
        // The default model takes RGB / 255, no mean or std: a value times 255 is its level.
        let levels: Vec<f32> = ours.iter().map(|x| x * 255.0).collect();
        let differences: Vec<f32> = levels.iter().zip(&pillow).map(|(a, b)| (a - f32::from(*b)).abs()).collect();
        let worst = differences.iter().copied().fold(0.0, f32::max);
        let over_one = differences.iter().filter(|d| **d > 1.001).count();
        let share = over_one as f64 / differences.len() as f64;
        println!("{name}: worst {worst:.0} levels from Pillow's, {over_one} values over one level");

        let bound = parity(&expected.file);
        assert!(worst <= bound.worst_level + 0.001, "{name}: {worst} levels from Pillow's; {bound:?}");
        assert!(share <= bound.share_over_one, "{name}: {over_one} values over a level away; {bound:?}");
        // Each channel's mean is Pillow's: a swapped or shifted channel shows here at once.
        for (channel, pillow_mean) in expected.channel_means.iter().enumerate() {
            let mean = levels.iter().skip(channel).step_by(3).map(|v| f64::from(*v)).sum::<f64>() / (240.0 * 240.0);
            let apart = (mean - pillow_mean).abs();
            assert!(
                apart <= bound.channel_mean,
                "{name} channel {channel}: mean {mean:.4}, Pillow's {pillow_mean}; {bound:?}"
            );
        }
    }
}

#[tokio::test]
async fn all_17_real_mri_images_match_the_python_reference() {
    let app = TestApp::spawn().await;
    let reference = reference();
    let mut worst = 0f32;
    let mut worst_log = 0f64;
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
        let log_difference = log_distance(&log_probabilities(prediction), &expected.probabilities);
        worst_log = worst_log.max(log_difference);
        let bound = parity(&name).log_probability;
        assert!(log_difference <= bound, "{name}: a log-probability {log_difference:.4} from the reference's");
        assert_eq!(prediction["confidence"], prediction["probabilities"][label_of(prediction)]);
    }
    println!("largest difference from the reference: {worst:.6} in probability, {worst_log:.6} in log-probability");
}

#[tokio::test]
async fn colour_images_match_the_python_reference() {
    let app = TestApp::spawn().await;
    let reference = reference();
    for (name, expected) in &reference.colour_images {
        let bytes = std::fs::read(repo_root().join(&reference.tensors[name].file)).unwrap();
        let body = app.classify(bytes).await;
        let prediction = &body["predictions"][0];
        assert_eq!(label_of(prediction), expected.label, "{name}: {prediction}");
        let log_difference = log_distance(&log_probabilities(prediction), &expected.probabilities);
        println!("{name}: largest log-probability difference {log_difference:.6}");
        let bound = parity(&reference.tensors[name].file).log_probability;
        assert!(log_difference <= bound, "{name}: a log-probability {log_difference:.4} from the reference's");
    }
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
        // Images of one class sort together, so the labels alone would not notice two of them
        // swapped: each answer must be its own image's, nearer to it than to any other.
        let (nearest, distance) = nearest_reference(prediction, &reference);
        assert_eq!(nearest, name, "an answer of the batch is {nearest}'s ({distance:.4}), not {name}'s");
        assert!(distance <= parity(name).log_probability, "{name}: {distance}");
    }
}
