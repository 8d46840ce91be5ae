//! The Open Inference Protocol's wire types (KServe V2 REST, as `required_api.md` in
//! kserve/kserve defines them), with Triton's classification and binary-data parameters.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error_code::Code;

/// `GET /v2`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerMetadata {
    #[schema(example = "scorer")]
    pub name: &'static str,
    pub version: &'static str,
    /// The protocol extensions served.
    pub extensions: Vec<&'static str>,
}

/// `GET /v2/models/{name}[/versions/{version}]`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelMetadata {
    #[schema(example = "brain-tumor-vgg16")]
    pub name: String,
    pub versions: Vec<String>,
    #[schema(example = "onnxruntime_onnx")]
    pub platform: &'static str,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TensorMetadata {
    pub name: String,
    #[schema(example = "FP32")]
    pub datatype: &'static str,
    /// `-1` for a dynamic dimension.
    pub shape: Vec<i64>,
}

/// `POST /v2/models/{name}[/versions/{version}]/infer`: the JSON part of the body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct InferRequest {
    #[serde(default)]
    pub id: Option<String>,
    /// `binary_data_output: true` asks for every output as binary data.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
    pub inputs: Vec<RequestInput>,
    /// The outputs wanted, and how; all of them as JSON when absent.
    #[serde(default)]
    pub outputs: Option<Vec<RequestOutput>>,
}

/// One input tensor: the model's own input as `FP32`, or encoded images as `BYTES`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RequestInput {
    pub name: String,
    pub shape: Vec<i64>,
    #[schema(example = "FP32")]
    pub datatype: String,
    /// `binary_data_size`: the tensor's bytes follow the JSON instead of `data`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
    /// Row-major, flat or nested; for `BYTES`, base64 strings.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RequestOutput {
    pub name: String,
    /// `classification: k` for the top k as `"value:index:label"`; `binary_data: true`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InferResponse {
    pub model_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<ResponseOutput>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResponseOutput {
    pub name: String,
    pub shape: Vec<usize>,
    #[schema(example = "FP32")]
    pub datatype: &'static str,
    /// `binary_data_size` when the data follows the JSON.
    #[serde(skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub data: Option<Value>,
}

/// Every V2 error: the protocol's `{"error": "..."}`, plus the stable code.
#[derive(Debug, Serialize, ToSchema)]
pub struct V2ErrorBody {
    pub error: String,
    pub code: Code,
}
