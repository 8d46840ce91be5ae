//! Logging set-up: `RUST_LOG` filters (default `info`), lines as text or as JSON objects that
//! Azure Log Analytics and Container Apps' console log parse into columns.

use std::io::Write;

use crate::settings::LogFormat;

pub fn init_logging(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info,actix_server=warn,ort=warn"));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = serde_json::json!({
                "timestamp": buf.timestamp_millis().to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "message": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    // A second initialisation (tests in one process) keeps the first logger.
    let _ = builder.try_init();
}
