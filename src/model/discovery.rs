//! Finds the model inside the model folder. Azure ML mounts a registered folder model at
//! `$AZUREML_MODEL_DIR/<folder>/...`, sometimes deeper, so the search goes a few levels down
//! (bounded) and insists on exactly one candidate.

use std::path::{Path, PathBuf};

use super::spec::{SPEC_FILE_NAME, SpecError, SpecFile};

/// How many folder levels below the model folder are searched.
pub const MAX_DEPTH: usize = 5;

/// The files that make up the model.
#[derive(Debug)]
pub struct ModelFiles {
    pub onnx: PathBuf,
    /// The spec and where it was found; `None` when the folder holds only an `.onnx` file.
    pub spec: Option<(PathBuf, SpecFile)>,
}

impl ModelFiles {
    /// The folder that relative paths in the spec are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.spec.as_ref().and_then(|(path, _)| path.parent()).or_else(|| self.onnx.parent()).unwrap_or(Path::new("."))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error(
        "model folder {0} does not exist. Run scripts/setup.sh to fetch the default model, \
         or point --model-dir (SCORER_MODEL_DIR) or AZUREML_MODEL_DIR at a model folder"
    )]
    MissingDir(PathBuf),
    #[error(
        "no model found under {dir} (searched {MAX_DEPTH} levels for {SPEC_FILE_NAME} and *.onnx). \
         Run scripts/setup.sh to fetch the default model, or point --model-dir at a model folder"
    )]
    Nothing { dir: PathBuf },
    #[error("{what} found under {dir}, expected one: {}", list(.found))]
    Ambiguous { what: &'static str, dir: PathBuf, found: Vec<PathBuf> },
    #[error(
        "the model file {0} named by the spec does not exist. \
         Run scripts/setup.sh to fetch the default model"
    )]
    MissingOnnx(PathBuf),
    #[error(transparent)]
    Spec(#[from] SpecError),
}

fn list(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

pub fn discover(model_dir: &Path) -> Result<ModelFiles, DiscoveryError> {
    if !model_dir.is_dir() {
        return Err(DiscoveryError::MissingDir(model_dir.to_path_buf()));
    }
    let mut specs = Vec::new();
    let mut onnx_files = Vec::new();
    walk(model_dir, 0, &mut |path| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name == SPEC_FILE_NAME {
            specs.push(path.to_path_buf());
        } else if name.to_ascii_lowercase().ends_with(".onnx") {
            onnx_files.push(path.to_path_buf());
        }
    });
    specs.sort();
    onnx_files.sort();

    match specs.as_slice() {
        [] => match onnx_files.as_slice() {
            [] => Err(DiscoveryError::Nothing { dir: model_dir.to_path_buf() }),
            [onnx] => Ok(ModelFiles { onnx: onnx.clone(), spec: None }),
            _ => Err(DiscoveryError::Ambiguous {
                what: "several .onnx files",
                dir: model_dir.to_path_buf(),
                found: onnx_files,
            }),
        },
        [spec_path] => {
            let spec = SpecFile::read(spec_path)?;
            let spec_dir = spec_path.parent().unwrap_or(model_dir);
            let onnx = match &spec.file {
                Some(file) => {
                    let path = spec_dir.join(file);
                    if !path.is_file() {
                        return Err(DiscoveryError::MissingOnnx(path));
                    }
                    path
                }
                None => {
                    let beside: Vec<PathBuf> =
                        onnx_files.iter().filter(|p| p.parent() == Some(spec_dir)).cloned().collect();
                    match beside.as_slice() {
                        [] => {
                            return Err(DiscoveryError::Nothing { dir: spec_dir.to_path_buf() });
                        }
                        [one] => one.clone(),
                        _ => {
                            return Err(DiscoveryError::Ambiguous {
                                what: "several .onnx files beside the spec (set `file` in it)",
                                dir: spec_dir.to_path_buf(),
                                found: beside,
                            });
                        }
                    }
                }
            };
            Ok(ModelFiles { onnx, spec: Some((spec_path.clone(), spec)) })
        }
        _ => Err(DiscoveryError::Ambiguous { what: "several model specs", dir: model_dir.to_path_buf(), found: specs }),
    }
}

/// Visits files up to `MAX_DEPTH` levels down, skipping hidden entries. Symbolic links are
/// followed (Azure's mounts use them); the depth bound stops link cycles.
fn walk(dir: &Path, depth: usize, visit: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            if depth < MAX_DEPTH {
                walk(&path, depth + 1, visit);
            }
        } else if path.is_file() {
            visit(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    #[test]
    fn finds_a_folder_model_in_azureml_layout() {
        let dir = TempDir::new("discovery-azure");
        // $AZUREML_MODEL_DIR = .../azureml-models/<name>/<version>; the folder keeps its name.
        let spec = dir.file("model/model.toml", "file = \"net.onnx\"\n");
        let onnx = dir.file("model/net.onnx", "");
        dir.file("model/README.md", "");
        let found = discover(&dir.0).unwrap();
        assert_eq!(found.onnx, onnx);
        assert_eq!(found.spec.unwrap().0, spec);
    }

    #[test]
    fn finds_a_model_several_levels_down_but_not_beyond_the_bound() {
        let dir = TempDir::new("discovery-deep");
        let onnx = dir.file("a/b/c/net.onnx", "");
        assert_eq!(discover(&dir.0).unwrap().onnx, onnx);

        let too_deep = TempDir::new("discovery-too-deep");
        too_deep.file("1/2/3/4/5/6/7/net.onnx", "");
        assert!(matches!(discover(&too_deep.0), Err(DiscoveryError::Nothing { .. })));
    }

    #[test]
    fn a_spec_without_file_takes_the_onnx_beside_it() {
        let dir = TempDir::new("discovery-beside");
        dir.file("m/model.toml", "");
        let onnx = dir.file("m/net.onnx", "");
        assert_eq!(discover(&dir.0).unwrap().onnx, onnx);
    }

    #[test]
    fn several_candidates_are_listed() {
        let dir = TempDir::new("discovery-several");
        dir.file("one/a.onnx", "");
        dir.file("two/b.onnx", "");
        let err = discover(&dir.0).unwrap_err().to_string();
        assert!(err.contains("a.onnx") && err.contains("b.onnx"), "{err}");

        let specs = TempDir::new("discovery-specs");
        specs.file("one/model.toml", "");
        specs.file("two/model.toml", "");
        let err = discover(&specs.0).unwrap_err().to_string();
        assert!(err.contains("several model specs"), "{err}");
    }

    #[test]
    fn missing_things_name_the_fix() {
        let err = discover(Path::new("/nonexistent/model")).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/model") && err.contains("scripts/setup.sh"), "{err}");

        let dir = TempDir::new("discovery-no-onnx");
        dir.file("model.toml", "file = \"gone.onnx\"\n");
        let err = discover(&dir.0).unwrap_err().to_string();
        assert!(err.contains("gone.onnx") && err.contains("scripts/setup.sh"), "{err}");

        let empty = TempDir::new("discovery-empty");
        assert!(matches!(discover(&empty.0), Err(DiscoveryError::Nothing { .. })));
    }
}
