//! V2 tensors in and out: the JSON header and the binary tensor data after it
//! (`Inference-Header-Content-Length`), the one input checked against the model and turned into
//! samples or encoded images, and the outputs written as JSON data, binary data or Triton's
//! classification strings. Pure functions, no actix: the handler runs them off the executor.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::types::{InferRequest, RequestInput, ResponseOutput};
use crate::http::error::ApiError;
use crate::input::EncodedImage;
use crate::model::spec::{BatchDim, ModelConfig};

/// The binary data extension's header: the length of the JSON part of the body.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// What the one input holds.
#[derive(Debug)]
pub enum Inputs {
    /// The model's own input, one sample per row, preprocessing skipped.
    Samples(Vec<Vec<f32>>),
    /// Encoded image files, preprocessed as `/score` does.
    Images(Vec<EncodedImage>),
}

/// A request, parsed: its JSON header and its inputs.
#[derive(Debug)]
pub struct Parsed {
    pub request: InferRequest,
    pub inputs: Inputs,
    pub outputs: OutputPlan,
}

/// How the one output is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputPlan {
    pub binary: bool,
    /// Top k as `"value:index:label"` strings instead of the tensor.
    pub classification: Option<usize>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::InvalidTensor(message.into())
}

/// Splits the body at `header_length` (the binary data extension) and checks the request
/// against the model.
pub fn parse(body: Bytes, header_length: Option<&str>, model: &ModelConfig) -> Result<Parsed, ApiError> {
    let json_len = match header_length {
        None => body.len(),
        Some(value) => value.trim().parse::<usize>().ok().filter(|&n| n <= body.len()).ok_or_else(|| {
            invalid(format!("{HEADER_LENGTH} must be a length within the body's {} bytes", body.len()))
        })?,
    };
    let request: InferRequest =
        serde_json::from_slice(&body[..json_len]).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let mut binary = body.slice(json_len..);
    let [input] = request.inputs.as_slice() else {
        return Err(invalid(format!(
            "the model takes one input, `{}`; the request has {}",
            model.input.name,
            request.inputs.len()
        )));
    };
    let raw = match binary_size(&input.parameters)? {
        Some(size) if size > binary.len() => {
            return Err(invalid(format!(
                "input `{}` declares {size} bytes of binary data; {} follow the JSON",
                input.name,
                binary.len()
            )));
        }
        Some(size) => Some(binary.split_to(size)),
        None => None,
    };
    let inputs = match input.datatype.as_str() {
        "FP32" => Inputs::Samples(samples(input, raw, model)?),
        "BYTES" => Inputs::Images(images(input, raw)?),
        other => {
            return Err(invalid(format!(
                "input `{}` is {other}; send FP32 (the model's input) or BYTES (encoded images)",
                input.name
            )));
        }
    };
    let outputs = output_plan(&request, model)?;
    Ok(Parsed { request, inputs, outputs })
}

fn binary_size(parameters: &Map<String, Value>) -> Result<Option<usize>, ApiError> {
    match parameters.get("binary_data_size") {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| invalid("binary_data_size must be a non-negative integer")),
    }
}

/// The model's input shape, batch first (`-1` when dynamic).
pub fn input_shape(model: &ModelConfig) -> Vec<i64> {
    let batch = match model.batch {
        BatchDim::Dynamic => -1,
        BatchDim::Fixed(n) => n as i64,
    };
    let [_, a, b, c] = model.input.batch_shape(1);
    vec![batch, a as i64, b as i64, c as i64]
}

fn samples(input: &RequestInput, raw: Option<Bytes>, model: &ModelConfig) -> Result<Vec<Vec<f32>>, ApiError> {
    let expected = input_shape(model);
    if input.name != model.input.name {
        return Err(invalid(format!("unknown input `{}`; the model's input is `{}`", input.name, model.input.name)));
    }
    let shape_fits = input.shape.len() == expected.len()
        && input.shape[0] >= 1
        && input.shape[1..] == expected[1..]
        && (expected[0] == -1 || input.shape[0] <= expected[0]);
    if !shape_fits {
        return Err(invalid(format!(
            "input `{}` has shape {:?}; the model takes {expected:?}",
            input.name, input.shape
        )));
    }
    // The shape is the client's claim: sizes come from the data actually sent, never from it.
    let rows = usize::try_from(input.shape[0]).unwrap_or(usize::MAX);
    let sample_len = model.input.sample_len();
    let Some(expected_values) = rows.checked_mul(sample_len) else {
        return Err(invalid(format!("input `{}` has shape {:?}: too large", input.name, input.shape)));
    };
    let values = match (raw, &input.data) {
        (Some(raw), _) => {
            if Some(raw.len()) != expected_values.checked_mul(4) {
                return Err(invalid(format!(
                    "input `{}`: {} bytes of binary data for {rows} x {sample_len} FP32 values",
                    input.name,
                    raw.len()
                )));
            }
            raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        }
        (None, Some(data)) => {
            let mut values = Vec::new();
            flatten_numbers(data, &mut values).map_err(|e| invalid(format!("input `{}`: {e}", input.name)))?;
            values
        }
        (None, None) => return Err(invalid(format!("input `{}` has neither data nor binary_data_size", input.name))),
    };
    if values.len() != expected_values {
        return Err(invalid(format!(
            "input `{}` has {} values; shape {:?} needs {}",
            input.name,
            values.len(),
            input.shape,
            expected_values
        )));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(invalid(format!("input `{}` holds a value that is not a finite number", input.name)));
    }
    Ok(values.chunks_exact(sample_len).map(<[f32]>::to_vec).collect())
}

/// Row-major values of a flat or nested JSON array of numbers.
fn flatten_numbers(data: &Value, out: &mut Vec<f32>) -> Result<(), String> {
    match data {
        Value::Array(items) => items.iter().try_for_each(|item| flatten_numbers(item, out)),
        Value::Number(n) => n.as_f64().map(|v| out.push(v as f32)).ok_or_else(|| format!("{n} is not a number")),
        other => Err(format!("FP32 data must be numbers, found {other}")),
    }
}

fn images(input: &RequestInput, raw: Option<Bytes>) -> Result<Vec<EncodedImage>, ApiError> {
    let count = match input.shape.as_slice() {
        [n] | [n, 1] if *n >= 1 => *n as usize,
        _ => {
            return Err(invalid(format!(
                "BYTES input `{}` has shape {:?}; send one element per image, shape [N] or [N, 1]",
                input.name, input.shape
            )));
        }
    };
    let images = match (raw, &input.data) {
        (Some(raw), _) => length_prefixed(raw).map_err(|e| invalid(format!("input `{}`: {e}", input.name)))?,
        (None, Some(Value::Array(items))) => {
            let mut strings = Vec::new();
            flatten_strings(items, &mut strings).map_err(|e| invalid(format!("input `{}`: {e}", input.name)))?;
            strings.into_iter().map(EncodedImage::Base64).collect()
        }
        (None, _) => {
            return Err(invalid(format!(
                "BYTES input `{}` needs data (base64 strings) or binary_data_size",
                input.name
            )));
        }
    };
    if images.len() != count {
        return Err(invalid(format!(
            "input `{}` has {} elements; shape {:?} says {count}",
            input.name,
            images.len(),
            input.shape
        )));
    }
    Ok(images)
}

fn flatten_strings(items: &[Value], out: &mut Vec<String>) -> Result<(), String> {
    for item in items {
        match item {
            Value::String(text) => out.push(text.clone()),
            Value::Array(inner) => flatten_strings(inner, out)?,
            other => return Err(format!("BYTES data in JSON must be base64 strings, found {other}")),
        }
    }
    Ok(())
}

/// BYTES elements as the binary data extension carries them: a 4-byte little-endian length,
/// then that many bytes, for each element.
fn length_prefixed(mut raw: Bytes) -> Result<Vec<EncodedImage>, String> {
    let mut elements = Vec::new();
    while !raw.is_empty() {
        if raw.len() < 4 {
            return Err("a BYTES element's 4-byte length is cut short".to_owned());
        }
        let length = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
        let _ = raw.split_to(4);
        if length > raw.len() {
            return Err(format!("a BYTES element declares {length} bytes; {} remain", raw.len()));
        }
        elements.push(EncodedImage::Raw(raw.split_to(length)));
    }
    Ok(elements)
}

fn output_plan(request: &InferRequest, model: &ModelConfig) -> Result<OutputPlan, ApiError> {
    let default_binary = request.parameters.get("binary_data_output").and_then(Value::as_bool).unwrap_or(false);
    let mut plan = OutputPlan { binary: default_binary, classification: None };
    let Some(outputs) = &request.outputs else { return Ok(plan) };
    match outputs.as_slice() {
        [] => Ok(plan),
        [output] if output.name == model.output.name => {
            if let Some(binary) = output.parameters.get("binary_data") {
                plan.binary = binary.as_bool().ok_or_else(|| invalid("binary_data must be true or false"))?;
            }
            plan.classification = match output.parameters.get("classification") {
                None => None,
                Some(k) => Some(
                    k.as_u64()
                        .filter(|&k| k >= 1)
                        .map(|k| (k as usize).min(model.output.classes))
                        .ok_or_else(|| invalid("classification must be a whole number of classes, at least 1"))?,
                ),
            };
            Ok(plan)
        }
        _ => Err(invalid(format!(
            "the model has one output, `{}`; the request asks for {:?}",
            model.output.name,
            outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>()
        ))),
    }
}

/// The one output, as the plan asks, and the binary data that follows the JSON (if any).
pub fn output(model: &ModelConfig, plan: OutputPlan, rows: &[Vec<f32>]) -> (ResponseOutput, Vec<u8>) {
    let name = model.output.name.clone();
    let mut parameters = Map::new();
    let (datatype, shape, data, binary) = match plan.classification {
        None => {
            let values: Vec<f32> = rows.iter().flatten().copied().collect();
            let shape = vec![rows.len(), rows.first().map_or(0, Vec::len)];
            if plan.binary {
                ("FP32", shape, None, values.iter().flat_map(|v| v.to_le_bytes()).collect())
            } else {
                ("FP32", shape, Some(Value::from(values)), Vec::new())
            }
        }
        Some(k) => {
            let strings: Vec<String> = rows.iter().flat_map(|row| top_k(row, k, &model.labels)).collect();
            let shape = vec![rows.len(), k];
            if plan.binary {
                let mut binary = Vec::new();
                for text in &strings {
                    binary.extend_from_slice(&(text.len() as u32).to_le_bytes());
                    binary.extend_from_slice(text.as_bytes());
                }
                ("BYTES", shape, None, binary)
            } else {
                ("BYTES", shape, Some(Value::from(strings)), Vec::new())
            }
        }
    };
    if plan.binary {
        parameters.insert("binary_data_size".to_owned(), Value::from(binary.len()));
    }
    (ResponseOutput { name, shape, datatype, parameters, data }, binary)
}

/// Triton's classification strings: `"value:index:label"`, highest first, the value printed as
/// C++'s `std::to_string` prints it (six decimals), as Triton does.
fn top_k(row: &[f32], k: usize, labels: &[String]) -> Vec<String> {
    let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
        .into_iter()
        .take(k)
        .map(|(index, value)| match labels.get(index) {
            Some(label) => format!("{value:.6}:{index}:{label}"),
            None => format!("{value:.6}:{index}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixed_elements_are_split_and_a_short_one_is_refused() {
        let mut raw = Vec::new();
        for element in [&b"abc"[..], &b""[..], &b"\xff\xd8"[..]] {
            raw.extend_from_slice(&(element.len() as u32).to_le_bytes());
            raw.extend_from_slice(element);
        }
        let elements = length_prefixed(Bytes::from(raw.clone())).unwrap();
        let bytes: Vec<Vec<u8>> = elements.into_iter().map(|e| e.into_bytes().unwrap().to_vec()).collect();
        assert_eq!(bytes, [b"abc".to_vec(), Vec::new(), b"\xff\xd8".to_vec()]);
        raw.truncate(raw.len() - 1);
        assert!(length_prefixed(Bytes::from(raw)).unwrap_err().contains("declares 2 bytes; 1 remain"));
    }

    fn model() -> ModelConfig {
        crate::testing::config("")
    }

    fn request(input: serde_json::Value) -> Bytes {
        Bytes::from(serde_json::to_vec(&serde_json::json!({ "inputs": [input] })).unwrap())
    }

    #[test]
    fn a_huge_declared_shape_is_refused_without_allocating_for_it() {
        let huge = [i64::MAX, 8, 8, 3];
        for data in [serde_json::json!([0.5]), serde_json::Value::Null] {
            let body = request(serde_json::json!({"name": "pixels", "shape": huge, "datatype": "FP32", "data": data}));
            let error = parse(body, None, &model()).unwrap_err();
            assert!(matches!(error, ApiError::InvalidTensor(_)), "{error}");
        }
        let bytes =
            request(serde_json::json!({"name": "image", "shape": [i64::MAX], "datatype": "BYTES", "data": ["aGk="]}));
        let error = parse(bytes, None, &model()).unwrap_err();
        assert!(error.to_string().contains("has 1 elements"), "{error}");
        let binary = serde_json::json!({"name": "pixels", "shape": [1_i64 << 40, 8, 8, 3], "datatype": "FP32",
            "parameters": {"binary_data_size": 4}});
        let mut body = serde_json::to_vec(&serde_json::json!({ "inputs": [binary] })).unwrap();
        let json_len = body.len().to_string();
        body.extend(0f32.to_le_bytes());
        let error = parse(Bytes::from(body), Some(&json_len), &model()).unwrap_err();
        assert!(matches!(error, ApiError::InvalidTensor(_)), "{error}");
    }

    #[test]
    fn nested_and_flat_numbers_flatten_row_major() {
        let mut out = Vec::new();
        flatten_numbers(&serde_json::json!([[1, 2], [3.5, -4]]), &mut out).unwrap();
        assert_eq!(out, [1.0, 2.0, 3.5, -4.0]);
        assert!(flatten_numbers(&serde_json::json!([1, "2"]), &mut Vec::new()).is_err());
    }

    #[test]
    fn classification_strings_are_tritons() {
        let labels = ["glioma", "meningioma", "notumor"].map(String::from);
        assert_eq!(top_k(&[0.1, 0.7, 0.2], 2, &labels), ["0.700000:1:meningioma", "0.200000:2:notumor"]);
        assert_eq!(top_k(&[0.1, 0.7, 0.2, 0.0], 4, &labels)[3], "0.000000:3");
    }
}
