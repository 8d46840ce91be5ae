//! `scorer model-input IMAGE...`: writes the tensor the server would feed the model for each
//! image, as a NumPy `.npy` file (float32, the model's layout, one row per image or DICOM frame),
//! so that it can be compared with the training pipeline's own tensor. Uses the loader and the
//! preprocessor the server uses, with the server's settings.

use std::path::{Path, PathBuf};

use crate::model::discovery::{self, DiscoveryError};
use crate::model::loader::{self, OpenError};
use crate::model::preprocess::ImageError;
use crate::model::runtime::{self, RuntimeError};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct ModelInputArgs {
    /// Image files (any format `/score` takes, DICOM included).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Folder for the `.npy` files, one per image, named after it (created if needed).
    #[arg(long, value_name = "DIR", default_value = "model-input")]
    pub out: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelInputError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Image { path: PathBuf, source: ImageError },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("two images would both be written to {0}: give images with different file names")]
    SameName(String),
}

/// Writes one `.npy` file per image and returns their paths. Opens the model in ONNX Runtime
/// (its graph settles what the spec leaves out), but runs nothing.
pub fn run(settings: &Settings, args: &ModelInputArgs) -> Result<Vec<PathBuf>, ModelInputError> {
    let mut names = std::collections::HashSet::new();
    if let Some(name) = args.images.iter().map(|path| npy_name(path)).find(|name| !names.insert(name.clone())) {
        return Err(ModelInputError::SameName(name));
    }
    let (environment, _) = runtime::init()?;
    let files = discovery::discover(&settings.model_folder())?;
    // One session and no optimised-model cache: only the reconciled spec is needed.
    let options = loader::EngineOptions { sessions: 1, cache: None, ..settings.engine_options() };
    let model = loader::load(&environment, &files, &options)?;
    let preprocessor = settings.classifier_options().preprocessor(&model.config.input);

    std::fs::create_dir_all(&args.out).map_err(|source| ModelInputError::Write { path: args.out.clone(), source })?;
    let mut written = Vec::with_capacity(args.images.len());
    for path in &args.images {
        let encoded = std::fs::read(path).map_err(|source| ModelInputError::Read { path: path.clone(), source })?;
        let samples = preprocessor
            .preprocess_frames(&encoded)
            .map_err(|source| ModelInputError::Image { path: path.clone(), source })?
            .samples;
        let shape = model.config.input.batch_shape(samples.len());
        let target = args.out.join(npy_name(path));
        write_npy(&target, &shape, samples.iter().flatten().copied())
            .map_err(|source| ModelInputError::Write { path: target.clone(), source })?;
        println!("{}: {shape:?} float32 -> {}", path.display(), target.display());
        written.push(target);
    }
    Ok(written)
}

/// `<file name>.npy`.
fn npy_name(image: &Path) -> String {
    let name = image.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "image".to_owned());
    format!("{name}.npy")
}

/// NumPy's format 1.0: magic, version, a header length, a Python dict literal padded with spaces
/// to a multiple of 64 bytes and ending in a newline, then the data (little-endian float32, C
/// order). Written here rather than with ndarray-npy, whose Python-literal parser (pest) is
/// only needed for reading.
fn write_npy(path: &Path, shape: &[usize], values: impl Iterator<Item = f32>) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    const PREAMBLE: usize = 10;
    let padding = (64 - (PREAMBLE + header.len() + 1) % 64) % 64;
    header.push_str(&" ".repeat(padding));
    header.push('\n');
    let header_len = u16::try_from(header.len()).map_err(std::io::Error::other)?;

    let mut bytes = Vec::with_capacity(PREAMBLE + header.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&header_len.to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    values.for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    #[test]
    fn two_images_of_one_name_are_refused_before_anything_is_loaded() {
        let args = ModelInputArgs {
            images: vec![PathBuf::from("a/scan.jpg"), PathBuf::from("b/other.png"), PathBuf::from("c/scan.jpg")],
            out: PathBuf::from("unused"),
        };
        let error = run(&Settings::default(), &args).unwrap_err();
        assert!(matches!(error, ModelInputError::SameName(ref name) if name == "scan.jpg.npy"), "{error}");
    }

    #[test]
    fn writes_numpy_format_1_0() {
        let dir = TempDir::new("npy");
        let path = dir.0.join("x.npy");
        write_npy(&path, &[1, 2, 3], [0.0f32, 1.0, -2.5, 3.0, 4.0, 5.0].into_iter()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        assert_eq!((10 + header_len) % 64, 0, "the data starts on a 64-byte boundary");
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }"), "{header}");
        assert!(header.ends_with('\n'));
        let data: Vec<f32> =
            bytes[10 + header_len..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        assert_eq!(data, [0.0, 1.0, -2.5, 3.0, 4.0, 5.0]);
    }
}
