//! The command line. Flags cover the common settings; every setting also has a `SCORER_*`
//! environment variable and a config-file key (README.md, "Settings").

use std::path::PathBuf;

use clap::Parser;

use crate::settings::{LogFormat, Overrides};

#[derive(Debug, Parser)]
#[command(name = "scorer", version, about = "Serve an ONNX image classifier with the Azure ML inference contract")]
pub struct Cli {
    /// TOML file with settings (env: SCORER_CONFIG_FILE).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to bind [default: 0.0.0.0] (env: SCORER_HOST).
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on; 0 picks a free one [default: 8000] (env: SCORER_PORT).
    #[arg(long)]
    pub port: Option<u16>,
    /// Model folder [default: $AZUREML_MODEL_DIR, else ./model] (env: SCORER_MODEL_DIR).
    #[arg(long, value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
    /// Log line format [default: text] (env: SCORER_LOG_FORMAT).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
}

impl Cli {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config_file: self.config.clone(),
            host: self.host.clone(),
            port: self.port,
            model_dir: self.model_dir.clone(),
            log_format: self.log_format,
        }
    }
}
