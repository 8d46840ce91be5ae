//! The model spec: a small human-edited `model.toml` beside the `.onnx` file that says how the
//! model was trained to see images (size, layout, colour, resize filter, normalisation) and what
//! its outputs mean (labels, probabilities or logits). Whatever it leaves out is derived from the
//! ONNX graph's input and output metadata; where the two disagree, loading fails.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the spec inside a model folder.
pub const SPEC_FILE_NAME: &str = "model.toml";

/// `model.toml` as written by a person: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    pub name: Option<String>,
    pub version: Option<String>,
    /// The ONNX file, relative to the spec; needed only when the folder holds several.
    pub file: Option<PathBuf>,
    /// Class names in output index order.
    pub labels: Option<Vec<String>>,
    /// Alternative to `labels`: a text file with one class name per line.
    pub labels_file: Option<PathBuf>,
    /// How many classes each prediction lists (highest first); default: all of them when there
    /// are at most 10, else 5.
    pub top_k: Option<usize>,
    #[serde(default)]
    pub input: InputSection,
    #[serde(default)]
    pub output: OutputSection,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSection {
    pub name: Option<String>,
    pub layout: Option<Layout>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub color: Option<ColorMode>,
    pub resize: Option<ResizeFilter>,
    /// Pixels 0..=255 are first mapped linearly onto this range, then `(x - mean) / std`.
    pub pixel_range: Option<[f32; 2]>,
    pub mean: Option<Vec<f32>>,
    pub std: Option<Vec<f32>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    pub name: Option<String>,
    pub kind: Option<OutputKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Layout {
    /// batch, height, width, channels (TensorFlow/Keras exports)
    Nhwc,
    /// batch, channels, height, width (PyTorch exports)
    Nchw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorMode {
    Rgb,
    Bgr,
    Grayscale,
}

impl ColorMode {
    pub fn channels(self) -> usize {
        match self {
            ColorMode::Rgb | ColorMode::Bgr => 3,
            ColorMode::Grayscale => 1,
        }
    }
}

/// Pillow's resampling filters, with Pillow's semantics (antialiased when shrinking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeFilter {
    Nearest,
    Box,
    Bilinear,
    Hamming,
    Bicubic,
    Lanczos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Rows already sum to one (the graph ends in a softmax).
    Probabilities,
    /// Raw scores; the server applies a softmax.
    Logits,
}

/// What the ONNX graph says about one input or output tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions; `None` where the graph leaves one symbolic (e.g. a dynamic batch).
    pub shape: Vec<Option<i64>>,
    pub is_f32: bool,
}

/// The graph's inputs and outputs, as the engine reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
}

/// How to turn an image into one sample of the model's input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputConfig {
    pub name: String,
    pub layout: Layout,
    pub width: u32,
    pub height: u32,
    pub color: ColorMode,
    pub resize: ResizeFilter,
    pub pixel_range: [f32; 2],
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl InputConfig {
    pub fn channels(&self) -> usize {
        self.color.channels()
    }

    /// Number of f32 values in one sample.
    pub fn sample_len(&self) -> usize {
        self.width as usize * self.height as usize * self.channels()
    }

    /// Shape of a batch of `n` samples.
    pub fn batch_shape(&self, n: usize) -> [usize; 4] {
        let (h, w, c) = (self.height as usize, self.width as usize, self.channels());
        match self.layout {
            Layout::Nhwc => [n, h, w, c],
            Layout::Nchw => [n, c, h, w],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputConfig {
    pub name: String,
    /// `None` until known: the spec said nothing and the warm-up run has not looked yet.
    pub kind: Option<OutputKind>,
    pub classes: usize,
}

/// The batch dimension of the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchDim {
    Dynamic,
    Fixed(usize),
}

/// Everything the server needs to know about the model, spec and graph reconciled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelConfig {
    pub name: String,
    pub version: Option<String>,
    pub input: InputConfig,
    pub output: OutputConfig,
    pub batch: BatchDim,
    pub labels: Vec<String>,
    pub top_k: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} is not a valid model spec: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("model spec and ONNX graph disagree: {0}")]
    Mismatch(String),
    #[error("model spec is incomplete: {0}")]
    Incomplete(String),
    #[error("model spec is invalid: {0}")]
    Invalid(String),
}

impl SpecFile {
    pub fn read(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SpecError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
        toml::from_str(&text).map_err(|e| SpecError::Parse { path: path.to_path_buf(), reason: e.to_string() })
    }

    /// Reconciles the spec with the graph. `base_dir` resolves `labels_file`; `fallback_name`
    /// names the model when the spec does not.
    pub fn resolve(&self, graph: &Signature, base_dir: &Path, fallback_name: &str) -> Result<ModelConfig, SpecError> {
        let input_info = pick(&graph.inputs, self.input.name.as_deref(), "input")?;
        let output_info = pick(&graph.outputs, self.output.name.as_deref(), "output")?;
        if !input_info.is_f32 || !output_info.is_f32 {
            return Err(SpecError::Mismatch("only float32 inputs and outputs are supported".to_owned()));
        }

        let input = self.resolve_input(input_info)?;
        let batch = match input_info.shape.first().copied().flatten() {
            None | Some(-1) => BatchDim::Dynamic,
            Some(n) if n >= 1 => BatchDim::Fixed(n as usize),
            Some(n) => return Err(SpecError::Mismatch(format!("input batch dimension is {n}"))),
        };

        let classes = class_count(output_info)?;
        let labels = self.resolve_labels(base_dir, classes)?;
        let top_k = match self.top_k {
            Some(0) => return Err(SpecError::Invalid("top_k must be at least 1".to_owned())),
            Some(k) => k.min(classes),
            None if classes <= 10 => classes,
            None => 5,
        };

        Ok(ModelConfig {
            name: self.name.clone().unwrap_or_else(|| fallback_name.to_owned()),
            version: self.version.clone(),
            input,
            output: OutputConfig { name: output_info.name.clone(), kind: self.output.kind, classes },
            batch,
            labels,
            top_k,
        })
    }

    fn resolve_input(&self, info: &TensorInfo) -> Result<InputConfig, SpecError> {
        let spec = &self.input;
        if info.shape.len() != 4 {
            return Err(SpecError::Mismatch(format!(
                "input `{}` has {} dimensions; an image model takes 4 (batch, and height, width, channels in some order)",
                info.name,
                info.shape.len()
            )));
        }
        let layout = match spec.layout.or_else(|| infer_layout(&info.shape)) {
            Some(layout) => layout,
            None => {
                return Err(SpecError::Incomplete(format!(
                    "cannot tell whether input `{}` is NHWC or NCHW from its shape; set input.layout",
                    info.name
                )));
            }
        };
        let (h_axis, w_axis, c_axis) = match layout {
            Layout::Nhwc => (1, 2, 3),
            Layout::Nchw => (2, 3, 1),
        };
        let graph_channels = info.shape[c_axis];
        let color = match (spec.color, graph_channels) {
            (Some(color), _) => color,
            (None, Some(1)) => ColorMode::Grayscale,
            (None, _) => ColorMode::Rgb,
        };
        if let Some(c) = graph_channels
            && c != color.channels() as i64
        {
            return Err(SpecError::Mismatch(format!(
                "input `{}` has {c} channels in {layout:?} layout, but colour mode {color:?} gives {}",
                info.name,
                color.channels()
            )));
        }
        let height = reconcile_dim("height", spec.height, info.shape[h_axis], &info.name)?;
        let width = reconcile_dim("width", spec.width, info.shape[w_axis], &info.name)?;

        let channels = color.channels();
        let mean = per_channel("mean", spec.mean.clone(), 0.0, channels)?;
        let std = per_channel("std", spec.std.clone(), 1.0, channels)?;
        if std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return Err(SpecError::Invalid("input.std values must be finite and non-zero".to_owned()));
        }
        let pixel_range = spec.pixel_range.unwrap_or([0.0, 1.0]);
        if pixel_range.iter().any(|v| !v.is_finite()) || pixel_range[0] == pixel_range[1] {
            return Err(SpecError::Invalid("input.pixel_range must be two different finite numbers".to_owned()));
        }

        Ok(InputConfig {
            name: info.name.clone(),
            layout,
            width,
            height,
            color,
            resize: spec.resize.unwrap_or(ResizeFilter::Bicubic),
            pixel_range,
            mean,
            std,
        })
    }

    fn resolve_labels(&self, base_dir: &Path, classes: usize) -> Result<Vec<String>, SpecError> {
        let labels = match (&self.labels, &self.labels_file) {
            (Some(_), Some(_)) => {
                return Err(SpecError::Invalid("give either labels or labels_file, not both".to_owned()));
            }
            (Some(labels), None) => labels.clone(),
            (None, Some(file)) => {
                let path = base_dir.join(file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| SpecError::Read { path: path.clone(), reason: e.to_string() })?;
                text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
            }
            (None, None) => (0..classes).map(|i| i.to_string()).collect(),
        };
        if labels.len() != classes {
            return Err(SpecError::Mismatch(format!(
                "the spec names {} labels but the model outputs {classes} classes",
                labels.len()
            )));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(duplicate) = labels.iter().find(|label| !seen.insert(label.as_str())) {
            return Err(SpecError::Invalid(format!("label `{duplicate}` appears twice")));
        }
        Ok(labels)
    }
}

fn pick<'a>(tensors: &'a [TensorInfo], wanted: Option<&str>, what: &str) -> Result<&'a TensorInfo, SpecError> {
    let names = || tensors.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
    match wanted {
        Some(name) => tensors.iter().find(|t| t.name == name).ok_or_else(|| {
            SpecError::Mismatch(format!("the spec names {what} `{name}`, but the graph's {what}s are: {}", names()))
        }),
        None => match tensors {
            [only] => Ok(only),
            [first, ..] if what == "output" => Ok(first),
            [] => Err(SpecError::Mismatch(format!("the graph has no {what}s"))),
            _ => Err(SpecError::Incomplete(format!("the graph has several {what}s ({}); set {what}.name", names()))),
        },
    }
}

/// NHWC when the last axis looks like colour channels, NCHW when the second one does.
fn infer_layout(shape: &[Option<i64>]) -> Option<Layout> {
    let is_channels = |d: Option<i64>| matches!(d, Some(1) | Some(3));
    match (is_channels(shape[1]), is_channels(shape[3])) {
        (false, true) => Some(Layout::Nhwc),
        (true, false) => Some(Layout::Nchw),
        _ => None,
    }
}

fn reconcile_dim(what: &str, spec: Option<u32>, graph: Option<i64>, input: &str) -> Result<u32, SpecError> {
    match (spec, graph) {
        (Some(s), Some(g)) if i64::from(s) != g => {
            Err(SpecError::Mismatch(format!("the spec sets input {what} {s}, but input `{input}` has {what} {g}")))
        }
        (Some(0), _) => Err(SpecError::Invalid(format!("input.{what} must be at least 1"))),
        (Some(s), _) => Ok(s),
        (None, Some(g)) if g > 0 && g <= i64::from(u16::MAX) => Ok(g as u32),
        (None, _) => Err(SpecError::Incomplete(format!("input `{input}` has no fixed {what}; set input.{what}"))),
    }
}

fn per_channel(what: &str, values: Option<Vec<f32>>, default: f32, channels: usize) -> Result<Vec<f32>, SpecError> {
    match values {
        None => Ok(vec![default; channels]),
        Some(v) if v.len() == channels => Ok(v),
        Some(v) if v.len() == 1 => Ok(vec![v[0]; channels]),
        Some(v) => Err(SpecError::Invalid(format!("input.{what} has {} values; give 1 or {channels}", v.len()))),
    }
}

/// Classes per sample: the product of the output's non-batch dimensions (`[N, 1000, 1, 1]`
/// counts as 1000).
fn class_count(info: &TensorInfo) -> Result<usize, SpecError> {
    let dims = info.shape.get(1..).unwrap_or_default();
    if dims.is_empty() {
        return Err(SpecError::Mismatch(format!("output `{}` has no class dimension", info.name)));
    }
    dims.iter().try_fold(1usize, |acc, d| match d {
        Some(d) if *d > 0 => Ok(acc * *d as usize),
        _ => Err(SpecError::Mismatch(format!(
            "output `{}` has a non-fixed class dimension ({:?})",
            info.name, info.shape
        ))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, shape: &[i64]) -> TensorInfo {
        TensorInfo {
            name: name.to_owned(),
            shape: shape.iter().map(|d| if *d < 0 { None } else { Some(*d) }).collect(),
            is_f32: true,
        }
    }

    /// The brain-tumour VGG16: `input` [N,240,240,3] → `dense_3` [N,4].
    fn vgg16() -> Signature {
        Signature { inputs: vec![tensor("input", &[-1, 240, 240, 3])], outputs: vec![tensor("dense_3", &[-1, 4])] }
    }

    /// `light_squeezenet.onnx` from the onnx wheel: `data_0` [1,3,224,224] → `softmaxout_1` [1,1000,1,1].
    fn squeezenet() -> Signature {
        Signature {
            inputs: vec![tensor("data_0", &[1, 3, 224, 224])],
            outputs: vec![tensor("softmaxout_1", &[1, 1000, 1, 1])],
        }
    }

    fn parse(text: &str) -> SpecFile {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn the_committed_brain_tumour_spec_resolves_against_its_graph() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("model").join(SPEC_FILE_NAME);
        let spec = SpecFile::read(&path).unwrap();
        let config = spec.resolve(&vgg16(), path.parent().unwrap(), "fallback").unwrap();
        assert_eq!(config.labels, ["glioma", "meningioma", "notumor", "pituitary"]);
        assert_eq!(config.input.layout, Layout::Nhwc);
        assert_eq!((config.input.width, config.input.height), (240, 240));
        assert_eq!(config.input.resize, ResizeFilter::Bicubic);
        assert_eq!(config.input.pixel_range, [0.0, 1.0]);
        assert_eq!(config.output.kind, Some(OutputKind::Probabilities));
        assert_eq!(config.batch, BatchDim::Dynamic);
        assert_eq!(config.top_k, 4);
    }

    #[test]
    fn an_empty_spec_is_completed_from_the_graph() {
        let config = SpecFile::default().resolve(&vgg16(), Path::new("."), "vgg").unwrap();
        assert_eq!(config.name, "vgg");
        assert_eq!(config.input.name, "input");
        assert_eq!(config.input.layout, Layout::Nhwc);
        assert_eq!(config.input.color, ColorMode::Rgb);
        assert_eq!(config.output.name, "dense_3");
        assert_eq!(config.output.kind, None);
        assert_eq!(config.labels, ["0", "1", "2", "3"]);
    }

    #[test]
    fn describes_an_nchw_logits_thousand_class_model() {
        let spec = parse(
            r#"
            name = "squeezenet"
            top_k = 5
            [input]
            layout = "NCHW"
            resize = "bilinear"
            mean = [0.485, 0.456, 0.406]
            std = [0.229, 0.224, 0.225]
            [output]
            kind = "logits"
            "#,
        );
        let config = spec.resolve(&squeezenet(), Path::new("."), "x").unwrap();
        assert_eq!(config.input.layout, Layout::Nchw);
        assert_eq!(config.input.batch_shape(1), [1, 3, 224, 224]);
        assert_eq!(config.output.classes, 1000);
        assert_eq!(config.output.kind, Some(OutputKind::Logits));
        assert_eq!(config.batch, BatchDim::Fixed(1));
        assert_eq!(config.labels.len(), 1000);
        assert_eq!(config.top_k, 5);
        // The layout alone is also derivable from the graph.
        let derived = SpecFile::default().resolve(&squeezenet(), Path::new("."), "x").unwrap();
        assert_eq!(derived.input.layout, Layout::Nchw);
        assert_eq!(derived.top_k, 5);
    }

    #[test]
    fn disagreements_with_the_graph_are_errors() {
        let wrong_labels = parse(r#"labels = ["a", "b", "c"]"#);
        let err = wrong_labels.resolve(&vgg16(), Path::new("."), "x").unwrap_err();
        assert_eq!(err, SpecError::Mismatch("the spec names 3 labels but the model outputs 4 classes".to_owned()));

        let wrong_size = parse("[input]\nwidth = 224");
        let err = wrong_size.resolve(&vgg16(), Path::new("."), "x").unwrap_err();
        assert!(matches!(err, SpecError::Mismatch(ref m) if m.contains("width 224")), "{err}");

        let wrong_layout = parse("[input]\nlayout = \"NCHW\"");
        let err = wrong_layout.resolve(&vgg16(), Path::new("."), "x").unwrap_err();
        assert!(matches!(err, SpecError::Mismatch(ref m) if m.contains("channels")), "{err}");

        let wrong_name = parse("[input]\nname = \"pixels\"");
        let err = wrong_name.resolve(&vgg16(), Path::new("."), "x").unwrap_err();
        assert!(err.to_string().contains("`pixels`") && err.to_string().contains("input"), "{err}");
    }

    #[test]
    fn dynamic_image_sizes_need_the_spec() {
        let graph = Signature { inputs: vec![tensor("x", &[-1, 3, -1, -1])], outputs: vec![tensor("y", &[-1, 10])] };
        let err = SpecFile::default().resolve(&graph, Path::new("."), "x").unwrap_err();
        assert!(matches!(err, SpecError::Incomplete(ref m) if m.contains("input.height")), "{err}");
        let config = parse("[input]\nwidth = 64\nheight = 32").resolve(&graph, Path::new("."), "x").unwrap();
        assert_eq!(config.input.batch_shape(2), [2, 3, 32, 64]);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<SpecFile>("lables = []").is_err());
        assert!(toml::from_str::<SpecFile>("[input]\nlayout = \"NWHC\"").is_err());
        let bad_std = parse("[input]\nstd = [0.0]");
        assert!(matches!(bad_std.resolve(&vgg16(), Path::new("."), "x"), Err(SpecError::Invalid(_))));
        let bad_mean = parse("[input]\nmean = [0.1, 0.2]");
        assert!(matches!(bad_mean.resolve(&vgg16(), Path::new("."), "x"), Err(SpecError::Invalid(_))));
        let duplicate = parse(r#"labels = ["a", "b", "a", "d"]"#);
        assert!(matches!(duplicate.resolve(&vgg16(), Path::new("."), "x"), Err(SpecError::Invalid(_))));
    }
}
