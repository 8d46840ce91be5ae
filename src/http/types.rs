//! The Azure contract's wire types: what `/score` and the probes read and write, and what the
//! OpenAPI document describes. The domain's types (`classifier`, `model`) carry no serde or
//! schema; they are converted here.

use serde::{Serialize, ser::SerializeMap};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};

use base64::Engine;

use crate::classifier::{Classification, FrameSource};
use crate::error_code::Code;
use crate::explain::Explanation;
use crate::model::postprocess;
use crate::model::spec::ModelConfig;

/// The JSON request body: exactly one of `image` and `images`, base64-encoded (a `data:` URL
/// prefix is allowed), optionally `explain` and `explain_grid`, and no other field. `payload.rs` parses it and names what is wrong; this
/// type only documents it (written by hand: utoipa's derive cannot close a variant's fields).
pub struct ScoreRequest;

impl utoipa::PartialSchema for ScoreRequest {
    fn schema() -> RefOr<Schema> {
        let image = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("One image file (JPEG, PNG, ..., or DICOM), base64-encoded."))
            .examples([serde_json::json!("/9j/4AAQSkZJRgABAQAAAQABAAD...")]);
        let images = ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::String))
            .description(Some("Several image files, base64-encoded; predictions come back in the same order."));
        let one_field = |name: &str, schema: RefOr<Schema>| {
            let explain = ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .description(Some("Add an occlusion-sensitivity map to every prediction (as `?explain=true`)."));
            let explain_grid = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(2))
                .description(Some("The map's grid side, up to the server's `explain_max_grid` (default 8)."));
            ObjectBuilder::new()
                .property(name, schema)
                .required(name)
                .property("explain", explain)
                .property("explain_grid", explain_grid)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        OneOfBuilder::new()
            .description(Some("Exactly one of `image` and `images`."))
            .item(one_field("image", image.into()))
            .item(one_field("images", images.into()))
            .into()
    }
}

impl ToSchema for ScoreRequest {}

/// A multipart upload: one or more file parts, any field names.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MultipartUpload {
    #[schema(value_type = Vec<String>, format = Binary)]
    pub file: Vec<u8>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScoreResponse {
    /// One prediction per image, in request order.
    pub predictions: Vec<Prediction>,
    pub model: ModelSummary,
}

/// The prediction for one image.
#[derive(Debug, Serialize, ToSchema)]
pub struct Prediction {
    /// The most likely class.
    #[schema(example = "glioma")]
    pub label: String,
    /// Its probability.
    #[schema(example = 0.997)]
    pub confidence: f32,
    /// Probability per class, highest first (the top k when there are many classes).
    #[schema(value_type = std::collections::HashMap<String, f32>)]
    pub probabilities: RankedProbabilities,
    /// For a DICOM file: which file and frame this prediction is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dicom: Option<DicomFrame>,
    /// When `explain` was asked for: where the model looked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<ExplanationBody>,
}

impl Prediction {
    /// The response's predictions, with their DICOM sources and explanations.
    pub fn all(classification: Classification) -> Vec<Self> {
        classification
            .predictions
            .into_iter()
            .zip(classification.frames)
            .zip(classification.explanations)
            .map(|((prediction, frame), explanation)| {
                let mut wire = Prediction::from(prediction);
                wire.dicom = frame.map(DicomFrame::from);
                wire.explanation = explanation.map(|e| ExplanationBody::new(e, &wire.label));
                wire
            })
            .collect()
    }
}

impl From<postprocess::Prediction> for Prediction {
    fn from(prediction: postprocess::Prediction) -> Self {
        Self {
            label: prediction.label,
            confidence: prediction.confidence,
            probabilities: RankedProbabilities(prediction.probabilities),
            dicom: None,
            explanation: None,
        }
    }
}

/// The DICOM file and frame a prediction is for.
#[derive(Debug, Serialize, ToSchema)]
pub struct DicomFrame {
    /// The file's SOP Instance UID, when it has one.
    #[schema(example = "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457")]
    pub sop_instance_uid: Option<String>,
    /// The frame's number, from 1.
    #[schema(example = 1)]
    pub frame: usize,
    /// How many frames the file holds.
    #[schema(example = 1)]
    pub frames: usize,
}

impl From<FrameSource> for DicomFrame {
    fn from(source: FrameSource) -> Self {
        Self { sop_instance_uid: source.sop_instance_uid, frame: source.frame, frames: source.frames }
    }
}

/// An occlusion-sensitivity map: how much the predicted class's probability drops when each
/// grid cell of the model's input is replaced by the input's mean colour. Not a segmentation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExplanationBody {
    #[schema(example = "occlusion")]
    pub method: &'static str,
    /// The class the drops are measured for (the prediction's label).
    #[schema(example = "glioma")]
    pub class: String,
    pub grid: GridSize,
    /// `drops[row][column]`: the probability's drop with that cell masked (negative: it rose).
    pub drops: Vec<Vec<f32>>,
    /// A PNG of the input as the model saw it, with the map overlaid in red, base64-encoded.
    pub overlay_png: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GridSize {
    #[schema(example = 8)]
    pub rows: u32,
    #[schema(example = 8)]
    pub columns: u32,
}

impl ExplanationBody {
    fn new(explanation: Explanation, label: &str) -> Self {
        let grid = explanation.grid;
        Self {
            method: "occlusion",
            class: label.to_owned(),
            grid: GridSize { rows: grid, columns: grid },
            drops: explanation.drops.chunks(grid.max(1) as usize).map(<[f32]>::to_vec).collect(),
            overlay_png: base64::engine::general_purpose::STANDARD.encode(&explanation.overlay_png),
        }
    }
}

/// Label → probability pairs that serialise as a JSON object in their order.
#[derive(Debug)]
pub struct RankedProbabilities(pub Vec<(String, f32)>);

impl Serialize for RankedProbabilities {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (label, probability) in &self.0 {
            map.serialize_entry(label, probability)?;
        }
        map.end()
    }
}

/// Which model answered.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelSummary {
    #[schema(example = "brain-tumor-vgg16")]
    pub name: String,
    #[schema(example = "0.1.1")]
    pub version: Option<String>,
}

impl ModelSummary {
    pub fn of(config: &ModelConfig) -> Self {
        Self { name: config.name.clone(), version: config.version.clone() }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Liveness {
    #[schema(example = "alive")]
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    pub model: ModelSummary,
}

/// The JSON body of every error response, in the shape of Azure's Python inference server.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    #[schema(example = "image 0: not an image in a supported format (JPEG, PNG, GIF, BMP, TIFF, WebP)")]
    pub message: String,
    /// What went wrong, for programs; stable across versions.
    pub code: Code,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_schema_is_one_of_image_and_images() {
        let document: serde_json::Value = serde_json::from_str(&crate::http::openapi::document()).unwrap();
        let schema = &document["components"]["schemas"]["ScoreRequest"];
        let variants = schema["oneOf"].as_array().unwrap_or_else(|| panic!("not a oneOf: {schema}"));
        let required: Vec<_> = variants.iter().map(|v| v["required"].clone()).collect();
        assert_eq!(required, [serde_json::json!(["image"]), serde_json::json!(["images"])], "{schema}");
        for variant in variants {
            assert_eq!(variant["additionalProperties"], false, "{schema}");
        }
    }

    #[test]
    fn probabilities_serialise_in_rank_order() {
        let probabilities = RankedProbabilities(vec![("meningioma".to_owned(), 0.7), ("glioma".to_owned(), 0.1)]);
        assert_eq!(serde_json::to_string(&probabilities).unwrap(), r#"{"meningioma":0.7,"glioma":0.1}"#);
    }
}
