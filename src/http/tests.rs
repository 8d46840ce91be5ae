//! The HTTP layer in-process, around a fake engine (`crate::testing`): the error table as each
//! front end answers it, and the V2 routes' tensors in and out. The real binary, model and
//! ONNX Runtime are tested over real sockets in tests/api and tests/v2.

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::{Method, header};
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::web;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::RequestLimits;
use super::auth::ApiKey;
use crate::classifier::Classifier;
use crate::error_code::Code;
use crate::input::EncodedImage;
use crate::metrics::Metrics;
use crate::state::ServerState;
use crate::testing::{MeanColourEngine, config, options, png};

const KEY: &str = "in-process-key";

fn state(ready: bool) -> web::Data<ServerState> {
    let metrics = Arc::new(Metrics::new());
    let state = ServerState::new(Arc::clone(&metrics));
    if ready {
        let model = config("name = \"colours\"\nlabels = [\"red\", \"green\", \"blue\"]");
        let classifier = Classifier::new(model, vec![MeanColourEngine], &options(), metrics).unwrap();
        state.model_ready(classifier);
    }
    web::Data::new(state)
}

/// The app as `http::app` builds it (a macro: the service's type cannot be named).
macro_rules! service {
    ($state:expr, $key:expr) => {{
        let limits =
            web::Data::new(RequestLimits { max_body_bytes: 64 * 1024, request_timeout: Duration::from_secs(10) });
        let key: Option<&str> = $key;
        let page = web::Data::new(super::ui::DemoPage::new(true, key.is_some()));
        init_service(super::app($state, limits, web::Data::new(key.map(ApiKey::new)), page, Vec::new())).await
    }};
}

fn png_bytes(colour: [u8; 3]) -> Vec<u8> {
    match png(colour) {
        EncodedImage::Raw(bytes) => bytes.to_vec(),
        EncodedImage::Base64(_) => unreachable!("png() encodes raw bytes"),
    }
}

async fn body_json(response: ServiceResponse<impl MessageBody>) -> Value {
    let bytes = read_body(response).await;
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
}

fn infer(body: Value) -> TestRequest {
    TestRequest::post().uri("/v2/models/colours/infer").set_json(body)
}

#[actix_web::test]
async fn every_error_answers_its_code_and_status_in_its_front_ends_shape() {
    let app = service!(state(true), None);
    let nine = vec![STANDARD.encode(png_bytes([1, 2, 3])); 9];
    let mut truncated = png_bytes([9, 9, 9]);
    truncated.truncate(truncated.len() / 2);
    let cases: Vec<(TestRequest, Code)> = vec![
        (TestRequest::get().uri("/nowhere"), Code::NotFound),
        (TestRequest::get().uri("/v2/nowhere"), Code::NotFound),
        (TestRequest::default().method(Method::TRACE).uri("/ready"), Code::MethodNotAllowed),
        (TestRequest::get().uri("/v2/models/colours/infer"), Code::MethodNotAllowed),
        (
            TestRequest::post().uri("/score").insert_header(("content-type", "application/json")).set_payload("{"),
            Code::InvalidJson,
        ),
        (TestRequest::post().uri("/score").set_json(json!({"image": "***"})), Code::InvalidBase64),
        (TestRequest::post().uri("/score").set_json(json!({"images": []})), Code::NoImage),
        (TestRequest::post().uri("/score").set_json(json!({ "images": nine })), Code::TooManyImages),
        (
            TestRequest::post().uri("/score").insert_header(("content-type", "text/plain")).set_payload("x"),
            Code::UnsupportedMediaType,
        ),
        (
            TestRequest::post().uri("/score").insert_header(("content-type", "image/png")).set_payload("not an image"),
            Code::UnsupportedImageFormat,
        ),
        (
            TestRequest::post().uri("/score").insert_header(("content-type", "image/png")).set_payload(truncated),
            Code::InvalidImage,
        ),
        (
            TestRequest::post().uri("/score").insert_header(("content-type", "image/png")).set_payload(vec![0; 70_000]),
            Code::BodyTooLarge,
        ),
        (
            TestRequest::get().uri("/health").insert_header(("x-ms-client-request-id", "x".repeat(101))),
            Code::RequestIdTooLong,
        ),
        (
            infer(json!({"inputs": [{"name": "pixels", "shape": [1, 8, 8], "datatype": "FP32", "data": [0.0]}]})),
            Code::InvalidTensor,
        ),
        (infer(json!({"inputs": []})), Code::InvalidTensor),
        (
            infer(json!({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["***"]}]})),
            Code::InvalidBase64,
        ),
        (TestRequest::get().uri("/v2/models/other"), Code::ModelNotFound),
        (TestRequest::get().uri("/v2/models/colours/versions/7/ready"), Code::ModelNotFound),
    ];
    for (request, code) in cases {
        let request = request.to_request();
        let path = request.path().to_owned();
        let response = call_service(&app, request).await;
        assert_eq!(response.status().as_u16(), code.status(), "{path}: {code}");
        let body = body_json(response).await;
        assert_eq!(body["code"], code.as_str(), "{path}: {body}");
        let message = if path.starts_with("/v2") { &body["error"] } else { &body["message"] };
        assert!(message.as_str().is_some_and(|m| !m.is_empty()), "{path}: {body} is not in its front end's shape");
    }
}

#[actix_web::test]
async fn availability_and_key_errors_in_both_shapes() {
    let loading = service!(state(false), None);
    for (path, shape_key) in [("/ready", "message"), ("/v2/health/ready", "error"), ("/v2/models/colours", "error")] {
        let response = call_service(&loading, TestRequest::get().uri(path).to_request()).await;
        assert_eq!(response.status(), 503, "{path}");
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
        let body = body_json(response).await;
        assert_eq!(body["code"], Code::NotReady.as_str());
        assert!(body[shape_key].is_string(), "{path}: {body}");
    }
    let shutting_down = state(true);
    shutting_down.begin_shutdown();
    let app = service!(shutting_down, None);
    let response = call_service(&app, TestRequest::get().uri("/v2/health/ready").to_request()).await;
    assert_eq!(body_json(response).await["code"], Code::ShuttingDown.as_str());

    let keyed = service!(state(true), Some(KEY));
    for (path, shape_key) in [("/metrics", "message"), ("/v2", "error")] {
        let response = call_service(&keyed, TestRequest::get().uri(path).to_request()).await;
        assert_eq!(response.status(), 401, "{path}");
        assert_eq!(response.headers().get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
        assert!(body_json(response).await[shape_key].is_string(), "{path}");
    }
    let authorised = TestRequest::get().uri("/v2").insert_header(("authorization", format!("Bearer {KEY}")));
    assert_eq!(call_service(&keyed, authorised.to_request()).await.status(), 200);
}

#[actix_web::test]
async fn v2_runs_a_tensor_as_it_is_and_an_image_through_preprocessing() {
    let app = service!(state(true), None);
    let metadata = body_json(call_service(&app, TestRequest::get().uri("/v2/models/colours").to_request()).await).await;
    assert_eq!(metadata["inputs"], json!([{"name": "pixels", "datatype": "FP32", "shape": [-1, 8, 8, 3]}]));
    assert_eq!(metadata["outputs"], json!([{"name": "scores", "datatype": "FP32", "shape": [-1, 3]}]));
    assert_eq!(metadata["versions"], json!(["1"]));

    // Two rows, nested: every value 0.5, then every value 0.1 (the engine answers 10 × the mean).
    let rows: Vec<Value> = [0.5, 0.1].iter().map(|v| json!(vec![vec![vec![*v; 3]; 8]; 8])).collect();
    let tensor =
        json!({"id": "t-1", "inputs": [{"name": "pixels", "shape": [2, 8, 8, 3], "datatype": "FP32", "data": rows}]});
    let answer = body_json(call_service(&app, infer(tensor).to_request()).await).await;
    assert_eq!(answer["id"], "t-1");
    assert_eq!(answer["model_name"], "colours");
    let output = &answer["outputs"][0];
    assert_eq!(
        (&output["name"], &output["shape"], &output["datatype"]),
        (&json!("scores"), &json!([2, 3]), &json!("FP32"))
    );
    let values: Vec<f64> = output["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for (value, expected) in values.iter().zip([5.0, 5.0, 5.0, 1.0, 1.0, 1.0]) {
        assert!((value - expected).abs() < 1e-5, "{values:?}");
    }

    // A red PNG as BYTES, answered with Triton's classification strings, then as binary data.
    let image = STANDARD.encode(png_bytes([255, 0, 0]));
    let request = |parameters: Value| {
        infer(json!({
            "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [image]}],
            "outputs": [{"name": "scores", "parameters": parameters}],
        }))
    };
    let classified = body_json(call_service(&app, request(json!({"classification": 2})).to_request()).await).await;
    assert_eq!(classified["outputs"][0]["datatype"], "BYTES");
    assert_eq!(classified["outputs"][0]["data"], json!(["10.000000:0:red", "0.000000:1:green"]));

    let response = call_service(&app, request(json!({"binary_data": true})).to_request()).await;
    let header_length: usize =
        response.headers().get("inference-header-content-length").unwrap().to_str().unwrap().parse().unwrap();
    let bytes = read_body(response).await;
    let header: Value = serde_json::from_slice(&bytes[..header_length]).unwrap();
    assert_eq!(header["outputs"][0]["parameters"]["binary_data_size"], 12);
    let floats: Vec<f32> =
        bytes[header_length..].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(floats, [10.0, 0.0, 0.0]);
}

/// A V2 request whose JSON header is followed by binary tensor data.
fn with_binary_data(uri: &str, header: &Value, data: &[u8]) -> TestRequest {
    let mut body = serde_json::to_vec(header).unwrap();
    let json_len = body.len();
    body.extend_from_slice(data);
    TestRequest::post()
        .uri(uri)
        .insert_header(("inference-header-content-length", json_len.to_string()))
        .set_payload(body)
}

#[actix_web::test]
async fn v2_takes_tensor_and_image_bytes_after_the_json_header() {
    let app = service!(state(true), None);
    let header = json!({"inputs": [{"name": "pixels", "shape": [1, 8, 8, 3], "datatype": "FP32", "parameters": {"binary_data_size": 768}}]});
    let tensor: Vec<u8> = (0..192).flat_map(|_| 0.25f32.to_le_bytes()).collect();
    let request = with_binary_data("/v2/models/colours/versions/1/infer", &header, &tensor);
    let answer = body_json(call_service(&app, request.to_request()).await).await;
    assert_eq!(answer["outputs"][0]["data"], json!([2.5, 2.5, 2.5]));

    let picture = png_bytes([0, 0, 255]);
    let header = json!({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": picture.len() + 4}}]});
    let element = [&(picture.len() as u32).to_le_bytes()[..], &picture].concat();
    let request = with_binary_data("/v2/models/colours/infer", &header, &element);
    let answer = body_json(call_service(&app, request.to_request()).await).await;
    assert_eq!(answer["outputs"][0]["data"], json!([0.0, 0.0, 10.0]));
}
