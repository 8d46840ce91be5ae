//! Server settings, layered: built-in defaults < optional config file < `SCORER_*` environment
//! variables < command-line flags. Every field is documented in README.md ("Settings").

use std::path::{Path, PathBuf};

use std::time::Duration;

use config::{Config, Environment, File};
use serde::{Deserialize, Serialize};

use crate::classifier::ClassifierOptions;
use crate::cpu_budget::{self, CpuBudget};
use crate::model::cache::CacheOptions;
use crate::model::dicom::WindowChoice;
use crate::model::engine::SessionOptions;
use crate::model::loader::EngineOptions;

/// Prefix of the environment variables that override settings (`SCORER_PORT`, ...).
pub const ENV_PREFIX: &str = "SCORER";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Optional TOML file with settings; read before the environment variables.
    pub config_file: Option<PathBuf>,
    /// Address to bind. `0.0.0.0` so that the container's port mapping reaches it.
    pub host: String,
    /// TCP port; 0 picks a free one (logged at start-up).
    pub port: u16,
    /// Folder holding the model; falls back to `AZUREML_MODEL_DIR`, then `./model`.
    pub model_dir: Option<PathBuf>,
    /// HTTP worker threads; 0 means one per CPU this process may use (its cgroup CPU quota
    /// where one is set, `cpu_budget`).
    pub http_workers: usize,
    /// ONNX Runtime intra-op threads per session; 0 means the cgroup CPU quota shared among the
    /// `inference_sessions` where a quota is set, else ONNX Runtime's own choice (one per
    /// physical core of the host).
    pub intra_op_threads: usize,
    /// Images decoded and resized at once; 0 means one per CPU this process may use.
    pub preprocess_threads: usize,
    /// ONNX Runtime sessions running side by side, each with its own copy of the model. 1 suits
    /// large models (one session uses every core); small models with a fixed batch size gain
    /// throughput from 2 or more, each with fewer `intra_op_threads`.
    pub inference_sessions: usize,
    /// Keep the graph ONNX Runtime optimised for this machine between starts and load that, which
    /// keeps the load's memory peak low (docs/architecture.md); off optimises on every start.
    pub optimized_model_cache: bool,
    /// Where that cache lives; default: a folder of this user's in the system temp folder.
    pub optimized_model_cache_dir: Option<PathBuf>,
    /// Largest batch handed to the model in one run (images).
    pub max_batch_size: usize,
    /// How long the batcher may wait for more images before running a partial batch.
    pub max_batch_wait_ms: u64,
    /// Images admitted and not yet answered, across all requests; beyond it requests get 503.
    pub queue_capacity: usize,
    /// Deadline for a scoring request, from arrival to answer; past it the answer is 504.
    pub request_timeout_ms: u64,
    /// Largest request body accepted (bytes).
    pub max_body_bytes: usize,
    /// Largest decoded image accepted (width × height), checked before decoding.
    pub max_image_pixels: u64,
    /// Most images accepted in one request (a multi-frame DICOM file's frames count each).
    pub max_images_per_request: usize,
    /// How DICOM grey levels are chosen: `first` (the file's first VOI LUT or window, else
    /// min–max), `min-max`, or a window index (0, 1, ...).
    pub dicom_window: String,
    /// The finest explanation grid a request may ask for (its side); an explained image takes
    /// side² + 1 queue places, so side² + 1 must fit in `queue_capacity`.
    pub explain_max_grid: u32,
    /// Serve the demo page at `/ui`.
    pub ui: bool,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// After SIGTERM, how long readiness reports 503 while requests are still accepted,
    /// so that a load balancer can stop routing here before the listener closes.
    pub shutdown_drain_ms: u64,
    /// After the drain, how long in-flight requests get to finish before the process exits.
    pub shutdown_timeout_secs: u64,
    /// Key that clients must send as `Authorization: Bearer <key>`; unset means no key is
    /// required (Azure ML endpoints authenticate callers themselves).
    pub api_key: Option<Secret>,
    /// File holding the key instead (a mounted secret); one of the two at most.
    pub api_key_file: Option<PathBuf>,
    /// Origins allowed to call from a browser (CORS); empty means CORS stays off.
    pub cors_allowed_origins: Vec<String>,
}

/// A string that never appears in logs or debug output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            config_file: None,
            host: "0.0.0.0".to_owned(),
            port: 8000,
            model_dir: None,
            http_workers: 0,
            intra_op_threads: 0,
            preprocess_threads: 0,
            inference_sessions: 1,
            optimized_model_cache: true,
            optimized_model_cache_dir: None,
            max_batch_size: 4,
            max_batch_wait_ms: 0,
            queue_capacity: 128,
            request_timeout_ms: 60_000,
            max_body_bytes: 32 * 1024 * 1024,
            max_image_pixels: 40_000_000,
            max_images_per_request: 32,
            dicom_window: "first".to_owned(),
            explain_max_grid: 10,
            ui: true,
            log_format: LogFormat::Text,
            shutdown_drain_ms: 0,
            shutdown_timeout_secs: 25,
            api_key: None,
            api_key_file: None,
            cors_allowed_origins: Vec::new(),
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers in charge.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub model_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid settings: {0}")]
    Invalid(#[from] config::ConfigError),
    #[error("invalid setting `{name}`: {reason}")]
    OutOfRange { name: &'static str, reason: &'static str },
    #[error("cannot read the API key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
}

impl Settings {
    /// Reads the settings from the process environment and the command line.
    pub fn load(overrides: &Overrides) -> Result<Self, SettingsError> {
        Self::load_from(overrides, std::env::vars())
    }

    /// Same as [`Settings::load`] with an explicit environment, for tests.
    pub fn load_from(
        overrides: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let env: config::Map<String, String> =
            env.into_iter().filter(|(key, _)| key.starts_with(&format!("{ENV_PREFIX}_"))).collect();
        let environment = Environment::with_prefix(ENV_PREFIX)
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("cors_allowed_origins")
            .source(Some(env.clone()));

        // The config file may itself be named by a flag or by SCORER_CONFIG_FILE.
        let config_file = overrides.config_file.clone().or_else(|| env.get("SCORER_CONFIG_FILE").map(PathBuf::from));

        let mut builder = Config::builder().add_source(Config::try_from(&Settings::default())?);
        if let Some(path) = &config_file {
            builder = builder.add_source(File::from(path.as_path()).required(true));
        }
        builder = builder.add_source(environment);
        builder = set_override(builder, "host", overrides.host.clone())?;
        builder = set_override(builder, "port", overrides.port.map(i64::from))?;
        builder = set_override(builder, "model_dir", overrides.model_dir.as_deref().map(path_string))?;
        builder = set_override(
            builder,
            "log_format",
            overrides.log_format.map(|format| match format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }),
        )?;

        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.config_file = config_file;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let positive = [
            ("max_batch_size", self.max_batch_size as u64),
            ("inference_sessions", self.inference_sessions as u64),
            ("queue_capacity", self.queue_capacity as u64),
            ("request_timeout_ms", self.request_timeout_ms),
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_image_pixels", self.max_image_pixels),
            ("max_images_per_request", self.max_images_per_request as u64),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(SettingsError::OutOfRange { name, reason: "must be at least 1" });
            }
        }
        if self.api_key.is_some() && self.api_key_file.is_some() {
            return Err(SettingsError::OutOfRange {
                name: "api_key",
                reason: "give api_key or api_key_file, not both",
            });
        }
        if self.api_key.as_ref().is_some_and(|key| key.expose().trim().is_empty()) {
            return Err(SettingsError::OutOfRange { name: "api_key", reason: "must not be empty" });
        }
        if self.max_images_per_request > self.queue_capacity {
            return Err(SettingsError::OutOfRange {
                name: "max_images_per_request",
                reason: "must not exceed queue_capacity, or such a request could never be admitted",
            });
        }
        if self.dicom_window.parse::<WindowChoice>().is_err() {
            return Err(SettingsError::OutOfRange {
                name: "dicom_window",
                reason: "expected `first`, `min-max` or a window index (0, 1, ...)",
            });
        }
        if !(2..=64).contains(&self.explain_max_grid) {
            return Err(SettingsError::OutOfRange { name: "explain_max_grid", reason: "must be from 2 to 64" });
        }
        Ok(())
    }

    /// The API key to require, from `api_key` or read from `api_key_file`.
    pub fn resolved_api_key(&self) -> Result<Option<Secret>, SettingsError> {
        let Some(path) = &self.api_key_file else { return Ok(self.api_key.clone()) };
        let key_error = |reason: String| SettingsError::KeyFile { path: path.clone(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?;
        let key = text.trim();
        if key.is_empty() {
            return Err(key_error("the file is empty".to_owned()));
        }
        Ok(Some(Secret(key.to_owned())))
    }

    /// The model folder for this process: the setting, else the `AZUREML_MODEL_DIR` variable
    /// (set by Azure ML), else `./model`.
    pub fn model_folder(&self) -> PathBuf {
        self.resolved_model_dir(std::env::var("AZUREML_MODEL_DIR").ok().as_deref())
    }

    /// The model folder: the setting, else `AZUREML_MODEL_DIR`, else `./model`.
    pub fn resolved_model_dir(&self, azureml_model_dir: Option<&str>) -> PathBuf {
        self.model_dir
            .clone()
            .or_else(|| azureml_model_dir.filter(|dir| !dir.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("model"))
    }

    /// How `model::loader` opens the engines.
    pub fn engine_options(&self) -> EngineOptions {
        EngineOptions {
            session: SessionOptions { intra_op_threads: self.effective_intra_op_threads() },
            sessions: self.inference_sessions,
            cache: self.optimized_model_cache.then(|| CacheOptions { dir: self.optimized_model_cache_folder() }),
        }
    }

    /// The optimised-model cache's folder: the setting, else one of this user's in the temp folder.
    pub fn optimized_model_cache_folder(&self) -> PathBuf {
        self.optimized_model_cache_dir.clone().unwrap_or_else(|| {
            #[cfg(unix)]
            // SAFETY: geteuid has no preconditions and cannot fail.
            let user = unsafe { libc::geteuid() }.to_string();
            #[cfg(not(unix))]
            let user = "user".to_owned();
            std::env::temp_dir().join(format!("scorer-model-cache-{user}"))
        })
    }

    /// How the classifier batches, admits and decodes.
    pub fn classifier_options(&self) -> ClassifierOptions {
        ClassifierOptions {
            max_batch_size: self.max_batch_size,
            max_batch_wait: Duration::from_millis(self.max_batch_wait_ms),
            queue_capacity: self.queue_capacity,
            max_image_pixels: self.max_image_pixels,
            max_images_per_request: self.max_images_per_request,
            preprocess_threads: self.effective_preprocess_threads(),
            dicom_window: self.dicom_window.parse().unwrap_or_default(),
            explain_max_grid: self.explain_max_grid,
        }
    }

    /// The intra-op threads each session gets; 0 leaves the choice to ONNX Runtime. ONNX Runtime
    /// ignores a container's CPU quota, so under one the pool is sized here instead.
    pub fn effective_intra_op_threads(&self) -> usize {
        intra_op_threads_for(self.intra_op_threads, self.inference_sessions, cpu_budget::detect())
    }

    pub fn effective_http_workers(&self) -> usize {
        or_cpu_count(self.http_workers)
    }

    pub fn effective_preprocess_threads(&self) -> usize {
        or_cpu_count(self.preprocess_threads)
    }
}

/// `value`, or the number of CPUs this process may use when it is 0.
fn or_cpu_count(value: usize) -> usize {
    if value == 0 { cpu_budget::detect().cpus } else { value }
}

fn intra_op_threads_for(setting: usize, sessions: usize, budget: CpuBudget) -> usize {
    match (setting, budget.quota) {
        (0, Some(_)) => (budget.cpus / sessions.max(1)).max(1),
        _ => setting,
    }
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn set_override<T: Into<config::Value>>(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
    key: &str,
    value: Option<T>,
) -> Result<config::ConfigBuilder<config::builder::DefaultState>, SettingsError> {
    Ok(builder.set_override_option(key, value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_apply_without_any_source() {
        let settings = Settings::load_from(&Overrides::default(), env(&[])).unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.port, 8000);
        assert_eq!(settings.host, "0.0.0.0");
    }

    #[test]
    fn environment_overrides_defaults_and_flags_override_environment() {
        let vars = env(&[
            ("SCORER_PORT", "9000"),
            ("SCORER_MAX_BATCH_SIZE", "6"),
            ("SCORER_LOG_FORMAT", "json"),
            ("UNRELATED", "x"),
        ]);
        let settings = Settings::load_from(&Overrides::default(), vars.clone()).unwrap();
        assert_eq!(settings.port, 9000);
        assert_eq!(settings.max_batch_size, 6);
        assert_eq!(settings.log_format, LogFormat::Json);

        let flags = Overrides { port: Some(9100), ..Overrides::default() };
        let settings = Settings::load_from(&flags, vars).unwrap();
        assert_eq!(settings.port, 9100);
        assert_eq!(settings.max_batch_size, 6);
    }

    #[test]
    fn config_file_sits_between_defaults_and_environment() {
        let dir = std::env::temp_dir().join(format!("scorer-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("scorer.toml");
        std::fs::write(&file, "port = 7000\nqueue_capacity = 64\n").unwrap();

        let vars = env(&[("SCORER_CONFIG_FILE", file.to_str().unwrap()), ("SCORER_QUEUE_CAPACITY", "99")]);
        let settings = Settings::load_from(&Overrides::default(), vars).unwrap();
        assert_eq!(settings.port, 7000);
        assert_eq!(settings.queue_capacity, 99);
        assert_eq!(settings.config_file.as_deref(), Some(file.as_path()));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn misspelt_variables_and_zero_limits_are_refused() {
        let typo = Settings::load_from(&Overrides::default(), env(&[("SCORER_PROT", "1")]));
        assert!(typo.unwrap_err().to_string().contains("prot"));

        let zero = Settings::load_from(&Overrides::default(), env(&[("SCORER_MAX_BATCH_SIZE", "0")]));
        assert!(zero.unwrap_err().to_string().contains("max_batch_size"));
    }

    #[test]
    fn model_dir_prefers_setting_then_azureml_then_local_folder() {
        let mut settings = Settings::default();
        assert_eq!(settings.resolved_model_dir(None), PathBuf::from("model"));
        assert_eq!(settings.resolved_model_dir(Some("/azml")), PathBuf::from("/azml"));
        settings.model_dir = Some(PathBuf::from("/mine"));
        assert_eq!(settings.resolved_model_dir(Some("/azml")), PathBuf::from("/mine"));
    }

    #[test]
    fn the_api_key_comes_from_a_variable_or_a_file_and_never_shows() {
        let settings = Settings::load_from(&Overrides::default(), env(&[("SCORER_API_KEY", "k-123")])).unwrap();
        assert_eq!(settings.resolved_api_key().unwrap().unwrap().expose(), "k-123");
        assert!(!format!("{settings:?}").contains("k-123"));

        let file = std::env::temp_dir().join(format!("scorer-key-{}", std::process::id()));
        std::fs::write(&file, "from-file\n").unwrap();
        let vars = env(&[("SCORER_API_KEY_FILE", file.to_str().unwrap())]);
        let settings = Settings::load_from(&Overrides::default(), vars).unwrap();
        assert_eq!(settings.resolved_api_key().unwrap().unwrap().expose(), "from-file");
        std::fs::remove_file(&file).unwrap();
        assert!(matches!(settings.resolved_api_key(), Err(SettingsError::KeyFile { .. })));

        let both = env(&[("SCORER_API_KEY", "a"), ("SCORER_API_KEY_FILE", "/x")]);
        assert!(Settings::load_from(&Overrides::default(), both).is_err());
    }

    #[test]
    fn cors_origins_are_a_comma_separated_list() {
        let vars = env(&[("SCORER_CORS_ALLOWED_ORIGINS", "https://a.example,https://b.example")]);
        let settings = Settings::load_from(&Overrides::default(), vars).unwrap();
        assert_eq!(settings.cors_allowed_origins, ["https://a.example", "https://b.example"]);
    }

    #[test]
    fn intra_op_threads_follow_a_cgroup_quota_only_when_left_at_zero() {
        let quota = Some(crate::cpu_budget::Quota { quota_us: 400_000, period_us: 100_000 });
        let limited = CpuBudget { cpus: 4, quota };
        assert_eq!(intra_op_threads_for(0, 1, limited), 4);
        assert_eq!(intra_op_threads_for(0, 2, limited), 2, "the quota is shared among the sessions");
        assert_eq!(intra_op_threads_for(0, 8, limited), 1);
        assert_eq!(intra_op_threads_for(3, 1, limited), 3, "an explicit setting wins");
        let unlimited = CpuBudget { cpus: 4, quota: None };
        assert_eq!(intra_op_threads_for(0, 1, unlimited), 0, "no quota: ONNX Runtime's own choice");
    }
}
