//! The command line. Flags cover the common settings; every setting also has a `SCORER_*`
//! environment variable and a config-file key (README.md, "Settings").

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::settings::{LogFormat, Overrides};

#[derive(Debug, Parser)]
#[command(name = "scorer", version, about = "Serve an ONNX image classifier with the Azure ML inference contract")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: SettingFlags,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Probe the local server's readiness; exit 0 if ready, 1 if not. For container
    /// HEALTHCHECKs: needs no curl in the image.
    Healthcheck(HealthcheckArgs),
    /// Measure the in-process inference ceiling and the preprocessing cost of one image, with
    /// the server's settings; prints JSON. scripts/bench.sh compares the server against these.
    Bench(crate::bench::BenchArgs),
    /// Score a folder of labelled images (class sub-folders or a labels.csv) and report accuracy,
    /// per-class figures, the confusion matrix and calibration; with --compare-model-dir, how
    /// closely a second model agrees. Writes report.json and report.html; exits 1 when a
    /// --min-accuracy or --min-agreement gate is not met.
    Evaluate(crate::evaluate::EvaluateArgs),
    /// Write the tensor the server feeds the model for each image, as a NumPy .npy file
    /// (float32, the model's layout), to check it against the training pipeline's own.
    ModelInput(crate::model_input::ModelInputArgs),
    /// Internal: optimise the model for this machine into a cache entry's staging folder. The
    /// server runs it as a child process so that the optimisation's memory peak ends with it.
    #[command(hide = true)]
    OptimizeModel(OptimizeModelArgs),
}

#[derive(Debug, Args)]
pub struct OptimizeModelArgs {
    /// The staging folder to write the optimised graph, its weights and the entry into.
    #[arg(long, value_name = "DIR")]
    pub into: PathBuf,
}

#[derive(Debug, Args)]
pub struct SettingFlags {
    /// TOML file with settings (env: SCORER_CONFIG_FILE).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Address to bind [default: 0.0.0.0] (env: SCORER_HOST).
    #[arg(long, global = true)]
    pub host: Option<String>,
    /// Port to listen on; 0 picks a free one [default: 8000] (env: SCORER_PORT).
    #[arg(long, global = true)]
    pub port: Option<u16>,
    /// Model folder [default: $AZUREML_MODEL_DIR, else ./model] (env: SCORER_MODEL_DIR).
    #[arg(long, value_name = "DIR", global = true)]
    pub model_dir: Option<PathBuf>,
    /// Log line format [default: text] (env: SCORER_LOG_FORMAT).
    #[arg(long, value_enum, global = true)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Route to probe.
    #[arg(long, default_value = "/ready")]
    pub path: String,
    /// Give up after this long.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
}

impl Cli {
    pub fn overrides(&self) -> Overrides {
        let flags = &self.settings;
        Overrides {
            config_file: flags.config.clone(),
            host: flags.host.clone(),
            port: flags.port,
            model_dir: flags.model_dir.clone(),
            log_format: flags.log_format,
        }
    }
}
