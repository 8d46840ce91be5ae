//! The properties the fuzz targets check, shared with the test suite: `fuzz/fuzz_targets/*` call
//! these functions on libFuzzer's inputs, and `tests/fuzz_regressions.rs` includes this file and
//! calls them on the saved inputs under `fuzz/regressions/<target>/`. Each function returns
//! normally for an input that is handled correctly, accepted or refused with a proper error, and
//! panics (an assertion) when a property is violated or the code under test panics.
//!
//! Uses only the scorer library's public API and crates the root package already depends on
//! (actix-web, base64, bytes, image, serde_json, tokio), plus one function the including crate
//! provides: `super::find(haystack, needle) -> Option<usize>` (memchr's memmem in the fuzz
//! crate, a plain search in the test).

use std::borrow::Cow;
use std::future::Future;
use std::io::Cursor;
use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use bytes::Bytes;
use scorer::http::error::ApiError;
use scorer::http::payload::{extract_images, parse_json};
use scorer::http::v2::tensor::{self, Inputs};
use scorer::input::{EncodedImage, decode_base64};
use scorer::model::dicom::{self, DicomError, DicomOptions, WindowChoice};
use scorer::model::preprocess::{ImageError, Preprocessor};
use scorer::model::spec::{
    BatchDim, ColorMode, InputConfig, Layout, ModelConfig, OutputConfig, OutputKind, ResizeFilter,
};

/// Pixel limit for decoding: like the server's tests, small enough that a huge-but-legal image
/// cannot make one run slow or large (the server's default is 40 000 000).
pub const MAX_PIXELS: u64 = 4_000_000;

/// `extract_images` hands JSON bodies over this size to `web::block`, which needs actix's
/// runtime; the targets stay under it (libFuzzer's -max_len) and skip anything larger.
pub const INLINE_JSON_BYTES: usize = 256 * 1024;

/// Images of one JSON body whose pixels are decoded (the base64 of every one is decoded): a body
/// with a thousand tiny valid images would otherwise take seconds.
pub const IMAGES_DECODED_PER_BODY: usize = 4;

/// The default model's input (model/model.toml): a Keras export.
pub fn default_model_input() -> InputConfig {
    InputConfig {
        name: "input".to_owned(),
        layout: Layout::Nhwc,
        width: 240,
        height: 240,
        color: ColorMode::Rgb,
        resize: ResizeFilter::Bicubic,
        pixel_range: [0.0, 1.0],
        mean: vec![0.0; 3],
        std: vec![1.0; 3],
    }
}

/// A PyTorch-style export: channels first, one grey channel, bilinear, a mean and std, and a
/// non-square size so that a width/height mix-up shows.
pub fn grayscale_nchw_input() -> InputConfig {
    InputConfig {
        name: "pixel_values".to_owned(),
        layout: Layout::Nchw,
        width: 64,
        height: 48,
        color: ColorMode::Grayscale,
        resize: ResizeFilter::Bilinear,
        pixel_range: [0.0, 1.0],
        mean: vec![0.449],
        std: vec![0.226],
    }
}

fn preprocessors() -> &'static [(InputConfig, Preprocessor); 2] {
    static PREPROCESSORS: OnceLock<[(InputConfig, Preprocessor); 2]> = OnceLock::new();
    PREPROCESSORS.get_or_init(|| {
        [default_model_input(), grayscale_nchw_input()].map(|input| {
            let preprocessor = Preprocessor::new(input.clone(), MAX_PIXELS);
            (input, preprocessor)
        })
    })
}

/// Drives a future that needs no I/O (multipart parsing polls an in-memory stream).
pub fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime =
            tokio::runtime::Builder::new_current_thread().build().expect("a current-thread runtime");
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}

/// A refusal made while decoding, before the model's input configuration plays any part: the
/// same for every configuration.
fn is_decode_error(error: &ImageError) -> bool {
    match error {
        ImageError::UnknownFormat | ImageError::TooLarge { .. } | ImageError::Dicom(_) => true,
        ImageError::Corrupt { format, .. } => format != "decoded",
    }
}

/// Images up to this size (from the header) are checked through both model inputs and decoded
/// once more on their own; larger ones (the MRI seeds are about 670x530) through one input,
/// chosen by the length's parity, which keeps the target at a useful speed.
pub const SMALL_IMAGE_PIXELS: u64 = 256 * 256;

/// Image bytes through the model inputs.
pub fn check_image(encoded: &[u8]) {
    let declared = image::ImageReader::new(Cursor::new(encoded))
        .with_guessed_format()
        .expect("reading from memory")
        .into_dimensions()
        .ok();
    let small = declared.is_none_or(|(width, height)| u64::from(width) * u64::from(height) <= SMALL_IMAGE_PIXELS);
    if small {
        // Decoding alone: the decoded image has the size its header declares, within the limit.
        if let Ok(image) = preprocessors()[0].1.decode(encoded) {
            let (width, height) = (image.width(), image.height());
            assert!(
                u64::from(width) * u64::from(height) <= MAX_PIXELS,
                "decoded a {width}x{height} image despite the limit of {MAX_PIXELS} pixels"
            );
            assert_eq!(declared, Some((width, height)), "decoded size differs from the header's");
        }
    }
    let first = encoded.len() % 2;
    let result = check_image_with(first, encoded);
    if small || result.as_ref().is_err_and(is_decode_error) {
        let other = check_image_with(1 - first, encoded);
        // Decoding does not depend on the model's input, so neither does a refusal made there.
        for (one, other) in [(&result, &other), (&other, &result)] {
            if let Err(error) = one
                && is_decode_error(error)
            {
                assert_eq!(other.as_ref().err(), Some(error), "the two model inputs disagree on the same bytes");
            }
        }
    }
}

/// Image bytes through one model input: a sample of exactly the input's size, every value finite
/// and within the range the normalisation maps 0..=255 onto, or a proper error.
pub fn check_image_with(input_index: usize, encoded: &[u8]) -> Result<(), ImageError> {
    let (input, preprocessor) = &preprocessors()[input_index % 2];
    check_preprocess(input, preprocessor, encoded)
}

fn check_preprocess(input: &InputConfig, preprocessor: &Preprocessor, encoded: &[u8]) -> Result<(), ImageError> {
    match preprocessor.preprocess(encoded) {
        Ok(sample) => {
            check_sample(input, preprocessor, &sample);
            Ok(())
        }
        Err(error) => {
            if let ImageError::TooLarge { width, height, max } = error {
                assert_eq!(max, MAX_PIXELS);
                assert!(u64::from(width) * u64::from(height) > max, "{error}");
            }
            assert!(!error.to_string().is_empty());
            Err(error)
        }
    }
}

/// One sample: exactly the input's size, every value finite and within the range the
/// normalisation maps 0..=255 onto.
fn check_sample(input: &InputConfig, preprocessor: &Preprocessor, sample: &[f32]) {
    let channels = input.color.channels();
    assert_eq!(sample.len(), input.width as usize * input.height as usize * channels, "sample size");
    assert_eq!(sample.len(), preprocessor.sample_len());
    // Channel c of value i: NHWC interleaves channels, NCHW stores one plane per channel.
    let plane = input.width as usize * input.height as usize;
    for (i, value) in sample.iter().enumerate() {
        let c = match input.layout {
            Layout::Nhwc => i % channels,
            Layout::Nchw => i / plane,
        };
        let [lo, hi] = input.pixel_range;
        let (a, b) = ((lo - input.mean[c]) / input.std[c], (hi - input.mean[c]) / input.std[c]);
        let (min, max) = (a.min(b), a.max(b));
        let slack = 1e-4 * (1.0 + min.abs().max(max.abs()));
        assert!(value.is_finite(), "value {i} is {value}");
        assert!(
            (min - slack..=max + slack).contains(value),
            "value {i} (channel {c}) is {value}, outside {min}..={max}"
        );
    }
}

/// What serde_json's own model of the body says the images are, for a body `parse_json` took.
fn expected_images(body: &[u8]) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_slice(body).expect("parse_json took a body that is not JSON");
    let object = value.as_object().expect("parse_json took a JSON body that is not an object");
    let known = ["image", "images", "explain", "explain_grid"];
    assert!(object.keys().all(|key| known.contains(&key.as_str())), "an unknown field was accepted: {object:?}");
    let single = object.get("image").filter(|v| !v.is_null());
    let several = object.get("images").filter(|v| !v.is_null());
    match (single, several) {
        (Some(text), None) => vec![text.as_str().expect("\"image\" is a string").to_owned()],
        (None, Some(list)) => list
            .as_array()
            .expect("\"images\" is an array")
            .iter()
            .map(|text| text.as_str().expect("every image is a string").to_owned())
            .collect(),
        _ => panic!("parse_json took a body with both or neither of \"image\" and \"images\""),
    }
}

/// A JSON request body: parsed, every image's base64 decoded, the first few images preprocessed.
pub fn check_json(body: &[u8]) {
    let parsed = parse_json(body).map(|input| input.images);
    if body.len() <= INLINE_JSON_BYTES {
        // The content-type dispatch gives the same answer as the parser itself.
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let dispatched = block_on(extract_images(&headers, Bytes::copy_from_slice(body)));
        assert_eq!(dispatched.as_ref().map(Vec::len).ok(), parsed.as_ref().map(Vec::len).ok());
    }
    let images = match parsed {
        Ok(images) => images,
        Err(error) => {
            assert!(matches!(error, ApiError::InvalidJson(_)), "{error:?}");
            return;
        }
    };
    let expected = expected_images(body);
    assert_eq!(images.len(), expected.len());
    let mut decoded = 0;
    for (image, expected) in images.into_iter().zip(expected) {
        let EncodedImage::Base64(text) = &image else { panic!("a JSON image that is not base64") };
        assert_eq!(*text, expected);
        match image.into_bytes() {
            Ok(bytes) => {
                if decoded < IMAGES_DECODED_PER_BODY {
                    let _ = check_image_with(decoded, &bytes);
                    decoded += 1;
                }
            }
            Err(error) => assert!(!error.to_string().is_empty()),
        }
    }
}

/// `decode_base64` on arbitrary text, and on every encoding clients send of arbitrary bytes.
pub fn check_base64(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check_base64_text(text);
    }
    if data.is_empty() {
        return;
    }
    let standard = STANDARD.encode(data);
    let wrapped: String =
        standard.as_bytes().chunks(76).map(|line| format!("{}\r\n", String::from_utf8_lossy(line))).collect();
    let mime_wrapped =
        standard.as_bytes().chunks(64).map(|line| String::from_utf8_lossy(line)).collect::<Vec<_>>().join("\n");
    for encoded in [
        STANDARD_NO_PAD.encode(data),
        URL_SAFE.encode(data),
        URL_SAFE_NO_PAD.encode(data),
        wrapped,
        mime_wrapped,
        format!("data:image/jpeg;base64,{standard}"),
        format!("  {standard}\n"),
        standard,
    ] {
        match decode_base64(&encoded) {
            Ok(bytes) => assert_eq!(bytes, data, "{encoded:?} decoded to other bytes"),
            Err(error) => panic!("{encoded:?} refused: {error}"),
        }
    }
}

fn check_base64_text(text: &str) {
    let Ok(bytes) = decode_base64(text) else { return };
    // What was decoded: the text without a data: prefix, whitespace and trailing padding.
    let payload = match text.strip_prefix("data:") {
        Some(rest) => rest.split_once(',').expect("a data: URL without a comma was accepted").1,
        None => text,
    };
    let compact: String = payload.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let digits = compact.trim_end_matches('=');
    assert!(!digits.is_empty(), "{text:?} has no base64 digits but decoded to {bytes:?}");
    assert!(digits.chars().all(|c| c.is_ascii_alphanumeric() || "+/-_".contains(c)), "{text:?} accepted");
    assert_eq!(bytes.len(), digits.len() * 3 / 4, "{text:?} decoded to {} bytes", bytes.len());
    // Re-encoded, the bytes give the same digits, but for the unused low bits of the last one.
    let standard_digits: String = digits
        .chars()
        .map(|c| {
            if c == '-' {
                '+'
            } else if c == '_' {
                '/'
            } else {
                c
            }
        })
        .collect();
    let again = STANDARD_NO_PAD.encode(&bytes);
    assert_eq!(again.len(), standard_digits.len(), "{text:?}");
    assert_eq!(again[..again.len() - 1], standard_digits[..again.len() - 1], "{text:?}");
}

/// A request with any content type, the fuzz input's first line; multipart bodies mostly, as the
/// seeds' first lines are `multipart/form-data; boundary=...`.
pub fn check_multipart(data: &[u8]) {
    let Some(newline) = data.iter().position(|&b| b == b'\n') else { return };
    let (line, body) = (&data[..newline], &data[newline + 1..]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(content_type) = HeaderValue::from_bytes(line) else { return };
    if body.len() > INLINE_JSON_BYTES {
        return;
    }
    let essence =
        content_type.to_str().unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, content_type);
    let result = block_on(extract_images(&headers, Bytes::copy_from_slice(body)));
    let images = match result {
        Ok(images) => images,
        Err(error) => {
            let expected = match essence.as_str() {
                "multipart/form-data" => matches!(error, ApiError::InvalidMultipart(_)),
                _ => matches!(error, ApiError::InvalidJson(_) | ApiError::UnsupportedMediaType(_)),
            };
            assert!(expected, "content type {essence:?}: {error:?}");
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    if essence != "multipart/form-data" {
        return;
    }
    // Every file part's content is a piece of the body, in order, not overlapping.
    let mut from = 0;
    for (i, image) in images.into_iter().enumerate() {
        assert!(matches!(image, EncodedImage::Raw(_)), "multipart part {i} is not raw bytes");
        let content = image.into_bytes().expect("raw bytes");
        let at = super::find(&body[from..], &content)
            .unwrap_or_else(|| panic!("part {i} ({} bytes) is not in the body after byte {from}", content.len()));
        from += at + content.len();
    }
}

/// A small model for the V2 target: 8x8 RGB NHWC in, three classes out, any batch size.
pub fn v2_model() -> ModelConfig {
    let mut input = default_model_input();
    input.name = "pixels".to_owned();
    (input.width, input.height) = (8, 8);
    ModelConfig {
        name: "colours".to_owned(),
        version: None,
        input,
        output: OutputConfig { name: "scores".to_owned(), kind: Some(OutputKind::Probabilities), classes: 3 },
        batch: BatchDim::Dynamic,
        labels: vec!["red".to_owned(), "green".to_owned(), "blue".to_owned()],
        top_k: 3,
    }
}

/// A V2 inference body (first byte odd: the next two bytes, little-endian, are the
/// `Inference-Header-Content-Length`; even: no such header, the rest is JSON): parsed against
/// the model, it is refused with a tensor, JSON or base64 error, or gives rows of exactly the
/// model's sample length, all finite, or at least one image; the output written for it is
/// self-consistent (shape, binary size).
pub fn check_v2_infer(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (header_length, body) = if mode & 1 == 1 && rest.len() >= 2 {
        (Some(u16::from_le_bytes([rest[0], rest[1]]).to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let model = v2_model();
    let parsed = match tensor::parse(Bytes::copy_from_slice(body), header_length.as_deref(), &model) {
        Ok(parsed) => parsed,
        Err(error) => {
            assert!(
                matches!(error, ApiError::InvalidTensor(_) | ApiError::InvalidJson(_)),
                "a V2 body refused with the wrong kind of error: {error:?}"
            );
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    let rows = match &parsed.inputs {
        Inputs::Samples(samples) => {
            assert!(!samples.is_empty(), "a tensor of no rows was accepted");
            for sample in samples {
                assert_eq!(sample.len(), model.input.sample_len(), "a row of the wrong length");
                assert!(sample.iter().all(|v| v.is_finite()), "a non-finite value was accepted");
            }
            samples.len()
        }
        Inputs::Images(images) => {
            assert!(!images.is_empty(), "a BYTES tensor of no images was accepted");
            images.len().min(64)
        }
    };
    if let Some(k) = parsed.outputs.classification {
        assert!((1..=model.output.classes).contains(&k), "classification of {k} classes");
    }
    let scores = vec![vec![0.25, 0.5, 0.25]; rows];
    let (output, binary) = tensor::output(&model, parsed.outputs, &scores);
    assert_eq!(output.shape[0], rows);
    if parsed.outputs.binary {
        assert_eq!(output.parameters["binary_data_size"], binary.len(), "binary_data_size is not the data's size");
        assert!(output.data.is_none());
    } else {
        assert!(binary.is_empty() && output.data.is_some());
    }
}

/// Frames a DICOM file may hold in the `dicom_decode` target (the server's default is 64).
pub const MAX_DICOM_FRAMES: usize = 8;

/// The window choices a DICOM file is decoded with: the viewer's default, min–max, and the
/// second window (the first when the file has only one).
const WINDOW_CHOICES: [WindowChoice; 3] = [WindowChoice::First, WindowChoice::MinMax, WindowChoice::Index(1)];

/// The two model inputs, reading DICOM files of up to `MAX_DICOM_FRAMES` frames, first window.
fn dicom_preprocessors() -> &'static [(InputConfig, Preprocessor); 2] {
    static PREPROCESSORS: OnceLock<[(InputConfig, Preprocessor); 2]> = OnceLock::new();
    PREPROCESSORS.get_or_init(|| {
        [default_model_input(), grayscale_nchw_input()].map(|input| {
            let preprocessor =
                Preprocessor::new(input.clone(), MAX_PIXELS).with_dicom(WindowChoice::First, MAX_DICOM_FRAMES);
            (input, preprocessor)
        })
    })
}

/// The `dicom_decode` target's input as a DICOM Part 10 file: bytes without the `DICM` magic
/// at offset 128 get a zero preamble and the magic in front, so that every input takes the DICOM
/// path (and a saved input replays as the fuzzer ran it).
pub fn as_dicom_file(data: &[u8]) -> Cow<'_, [u8]> {
    if dicom::is_dicom(data) {
        return Cow::Borrowed(data);
    }
    let mut file = Vec::with_capacity(132 + data.len());
    file.extend_from_slice(&[0; 128]);
    file.extend_from_slice(b"DICM");
    file.extend_from_slice(data);
    Cow::Owned(file)
}

/// What one decoding of a DICOM file gave: its SOP Instance UID and every frame's size.
type Decoded = Result<(Option<String>, Vec<(u32, u32)>), DicomError>;

/// A DICOM file (see `as_dicom_file`): decoded with every window choice, then preprocessed
/// through both model inputs. Decoded: at most `MAX_DICOM_FRAMES` frames of one size, 8-bit grey
/// or RGB, Rows × Columns × frames within the pixel limit, whatever the window; preprocessed: one
/// sample per frame (1 to `MAX_DICOM_FRAMES`), each checked as `check_image` checks one, and the
/// file's identifier; refused: with a DICOM error that says what the limit was, the same for every
/// window and both inputs (decoding depends on neither), or a resize error.
pub fn check_dicom(data: &[u8]) {
    let file = as_dicom_file(data);
    let decoded = WINDOW_CHOICES.map(|window| check_dicom_decode(&file, window));
    for (window, other) in WINDOW_CHOICES.iter().zip(&decoded).skip(1) {
        // The window changes grey levels, not the frames' number or size, nor whether it decodes.
        assert_eq!(other, &decoded[0], "decoding with {window:?} differs from decoding with the first window");
    }
    let first = &decoded[0];
    let results = dicom_preprocessors().each_ref().map(|(input, preprocessor)| {
        let result = check_dicom_preprocess(input, preprocessor, &file);
        // The preprocessor decodes as `dicom::decode` with the same options did.
        match (first, &result) {
            (Err(error), result) => {
                assert_eq!(result, &Err(ImageError::Dicom(error.clone())), "preprocessing refused otherwise")
            }
            (Ok((_, frames)), Err(ImageError::Dicom(DicomError::NotAnImage(_)))) if frames.is_empty() => {}
            (Ok((uid, frames)), Ok(samples)) => assert_eq!((uid, frames.len()), (&samples.0, samples.1), "{input:?}"),
            (Ok(_), Err(error)) => {
                assert!(
                    matches!(error, ImageError::Corrupt { format, .. } if format == "decoded"),
                    "decoded, then refused with {error:?}"
                )
            }
        }
        result
    });
    // Decoding does not depend on the model's input, so neither does a refusal made there.
    for (one, other) in [(&results[0], &results[1]), (&results[1], &results[0])] {
        if let Err(error) = one
            && is_decode_error(error)
        {
            assert_eq!(other.as_ref().err(), Some(error), "the two model inputs disagree on the same DICOM file");
        }
    }
}

/// `dicom::decode` with one window choice, the pixel limit and `MAX_DICOM_FRAMES`.
fn check_dicom_decode(file: &[u8], window: WindowChoice) -> Decoded {
    let options = DicomOptions { max_pixels: MAX_PIXELS, max_frames: MAX_DICOM_FRAMES, window };
    match dicom::decode(file, &options) {
        Ok(image) => {
            let frames = image.frames.len();
            assert!(frames <= MAX_DICOM_FRAMES, "decoded {frames} frames despite the limit of {MAX_DICOM_FRAMES}");
            let sizes: Vec<(u32, u32)> = image.frames.iter().map(|frame| (frame.width(), frame.height())).collect();
            let pixels: u64 = sizes.iter().map(|&(width, height)| u64::from(width) * u64::from(height)).sum();
            assert!(pixels <= MAX_PIXELS, "decoded {frames} frames of {sizes:?}: {pixels} pixels, over {MAX_PIXELS}");
            for (i, frame) in image.frames.iter().enumerate() {
                assert_eq!(sizes[i], sizes[0], "frame {i}'s size differs from frame 0's");
                assert!(sizes[i].0 > 0 && sizes[i].1 > 0, "frame {i} is {:?}", sizes[i]);
                assert!(
                    matches!(frame, image::DynamicImage::ImageLuma8(_) | image::DynamicImage::ImageRgb8(_)),
                    "frame {i} is {:?}, not 8-bit grey or RGB",
                    frame.color()
                );
            }
            Ok((image.sop_instance_uid, sizes))
        }
        Err(error) => {
            check_dicom_error(&error);
            Err(error)
        }
    }
}

/// A DICOM refusal: a message, no header text in it, and the limit it names is the one set.
fn check_dicom_error(error: &DicomError) {
    let message = error.to_string();
    assert!(!message.is_empty());
    // Attribute values never reach an error: only codes, UIDs and sizes, all printable ASCII.
    assert!(message.bytes().all(|b| b == b' ' || b.is_ascii_graphic()), "{message:?}");
    match *error {
        DicomError::TooLarge { rows, columns, frames, max } => {
            assert_eq!(max, MAX_PIXELS);
            assert!(u64::from(rows) * u64::from(columns) * u64::from(frames) > max, "{error}");
        }
        DicomError::TooManyFrames { frames, max } => {
            assert_eq!(max, MAX_DICOM_FRAMES);
            assert!(frames as usize > max, "{error}");
        }
        _ => {}
    }
}

/// `preprocess_frames` through one model input: 1 to `MAX_DICOM_FRAMES` samples of exactly the
/// input's size with finite, normalised values, and a `DicomSource`; or a DICOM or resize error.
/// Gives the SOP Instance UID and the number of samples.
fn check_dicom_preprocess(
    input: &InputConfig,
    preprocessor: &Preprocessor,
    file: &[u8],
) -> Result<(Option<String>, usize), ImageError> {
    match preprocessor.preprocess_frames(file) {
        Ok(samples) => {
            let count = samples.samples.len();
            assert!((1..=MAX_DICOM_FRAMES).contains(&count), "{count} samples from one DICOM file");
            for sample in &samples.samples {
                check_sample(input, preprocessor, sample);
            }
            let source = samples.dicom.expect("a DICOM file's samples without a DicomSource");
            Ok((source.sop_instance_uid, count))
        }
        Err(error) => {
            match &error {
                ImageError::Dicom(dicom) => check_dicom_error(dicom),
                ImageError::Corrupt { format, .. } if format == "decoded" => {}
                other => panic!("a DICOM file refused with {other:?}"),
            }
            assert!(!error.to_string().is_empty());
            Err(error)
        }
    }
}
