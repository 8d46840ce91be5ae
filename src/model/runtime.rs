//! Finds and loads the ONNX Runtime shared library. `ort` is built with `load-dynamic`, so the
//! library is opened at start-up instead of being linked, and a missing library is a clear error
//! instead of a loader failure.

use std::path::{Path, PathBuf};

use ort::environment::Environment;

/// The environment variable `ort` itself honours; it wins over every other location.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// Where `scripts/setup.sh` puts the library for a source checkout; compiled in so that
/// `target/release/scorer` finds it from any working directory.
const CHECKOUT_RUNTIME_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/runtime/lib");

const LIBRARY_NAMES: &[&str] = &["libonnxruntime.so", "libonnxruntime.dylib", "onnxruntime.dll"];

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found (looked for {names} in: {searched}). \
         Run scripts/setup.sh to fetch it, or set {DYLIB_ENV} to the library file",
        names = LIBRARY_NAMES.join(", "),
        searched = .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound { searched: Vec<PathBuf> },
    #[error("{DYLIB_ENV} points to {0}, which does not exist")]
    EnvPathMissing(PathBuf),
    #[error("could not load the ONNX Runtime library {path}: {source}")]
    Load { path: PathBuf, source: ort::LoadDynamicError },
    #[error("could not create the ONNX Runtime environment: {0}")]
    Environment(#[from] ort::Error),
}

/// The library file to load: `ORT_DYLIB_PATH`, else next to the executable (`./`, `../lib`),
/// else the checkout's `runtime/lib`, else the system's library folders.
pub fn locate_library(env_override: Option<&str>) -> Result<PathBuf, RuntimeError> {
    if let Some(path) = env_override.filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() { Ok(path) } else { Err(RuntimeError::EnvPathMissing(path)) };
    }
    let searched = candidate_dirs();
    searched
        .iter()
        .flat_map(|dir| LIBRARY_NAMES.iter().map(move |name| dir.join(name)))
        .find(|path| path.is_file())
        .ok_or(RuntimeError::NotFound { searched })
}

fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)) {
        dirs.push(exe_dir.join("lib"));
        dirs.push(exe_dir.join("../lib"));
        dirs.push(exe_dir);
    }
    dirs.push(PathBuf::from(CHECKOUT_RUNTIME_DIR));
    dirs.extend(
        ["/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"].map(PathBuf::from),
    );
    dirs
}

/// The variable that turns ONNX Runtime's POSIX telemetry off entirely, read when the library
/// initialises: with it no device id, offline event cache or uploader is created (ONNX Runtime
/// 1.31 otherwise writes ~/.cache/Microsoft/DeveloperTools/.onnxruntime and queues a
/// `ProcessInfo` event even when the environment then disables telemetry events).
pub const TELEMETRY_OPT_OUT_ENV: &str = "ORT_DISABLE_TELEMETRY";

/// Opts this process out of ONNX Runtime's telemetry unless the operator set the variable
/// themselves. Call first thing in `main`, before any thread starts.
pub fn opt_out_of_telemetry() {
    if std::env::var_os(TELEMETRY_OPT_OUT_ENV).is_none() {
        // SAFETY: called at the top of main, while the process has a single thread, so nothing
        // reads the environment concurrently.
        unsafe { std::env::set_var(TELEMETRY_OPT_OUT_ENV, "1") };
    }
}

/// The ONNX Runtime environment from the library `locate_library` finds (honouring
/// `ORT_DYLIB_PATH`), and the library's path for the start-up log.
pub fn init() -> Result<(Environment, PathBuf), RuntimeError> {
    let library = locate_library(std::env::var(DYLIB_ENV).ok().as_deref())?;
    let environment = init_environment(&library)?;
    Ok((environment, library))
}

/// Loads the library (once per process) and creates the ONNX Runtime environment.
pub fn init_environment(library: &Path) -> Result<Environment, RuntimeError> {
    let builder =
        ort::init_from(library).map_err(|source| RuntimeError::Load { path: library.to_path_buf(), source })?;
    // Telemetry events off for this environment too (`opt_out_of_telemetry` stops the rest): a
    // scoring server in a locked-down network must not phone home, and nothing here needs it.
    Ok(builder.with_name("scorer").with_telemetry(false).build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_must_exist() {
        let err = locate_library(Some("/nonexistent/libonnxruntime.so")).unwrap_err();
        assert!(matches!(err, RuntimeError::EnvPathMissing(_)));
        assert!(err.to_string().contains("/nonexistent/libonnxruntime.so"));
    }

    #[test]
    fn not_found_names_the_fix() {
        let err = RuntimeError::NotFound { searched: vec![PathBuf::from("/a"), PathBuf::from("/b")] };
        let message = err.to_string();
        assert!(message.contains("scripts/setup.sh"), "{message}");
        assert!(message.contains(DYLIB_ENV), "{message}");
        assert!(message.contains("/a, /b"), "{message}");
    }
}
