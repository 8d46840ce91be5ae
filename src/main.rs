use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use scorer::cli::{Cli, Command};
use scorer::settings::Settings;
use scorer::startup::Application;
use scorer::{healthcheck, telemetry};

/// Exit code of `scorer evaluate` when a --min-accuracy or --min-agreement gate is not met.
const EXIT_GATE_UNMET: u8 = 1;
/// Exit code for invalid settings (as clap uses for invalid arguments).
const EXIT_BAD_SETTINGS: u8 = 2;
/// Exit code when the server cannot start: missing runtime or model, a model that fails to load.
/// Azure's Python inference server exits with 3 when its `init()` fails.
const EXIT_START_FAILED: u8 = 3;

fn main() -> ExitCode {
    scorer::model::runtime::opt_out_of_telemetry();
    scorer::memory::keep_large_buffers_out_of_the_heap();
    let cli = Cli::parse();
    let settings = match Settings::load(&cli.overrides()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("scorer: {error}");
            return ExitCode::from(EXIT_BAD_SETTINGS);
        }
    };
    match cli.command {
        Some(Command::Healthcheck(args)) => {
            match healthcheck::probe(settings.port, &args.path, Duration::from_millis(args.timeout_ms)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(reason) => {
                    eprintln!("scorer healthcheck: {reason}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Bench(args)) => {
            telemetry::init_logging(settings.log_format);
            match scorer::bench::run(&settings, &args) {
                Ok(report) => {
                    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("scorer bench: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Evaluate(args)) => {
            telemetry::init_logging(settings.log_format);
            match scorer::evaluate::run(&settings, &args) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(EXIT_GATE_UNMET),
                Err(error) => {
                    eprintln!("scorer evaluate: {error}");
                    ExitCode::from(if error.is_start_failure() { EXIT_START_FAILED } else { EXIT_BAD_SETTINGS })
                }
            }
        }
        Some(Command::ModelInput(args)) => {
            telemetry::init_logging(settings.log_format);
            match scorer::model_input::run(&settings, &args) {
                Ok(_) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("scorer model-input: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::OptimizeModel(args)) => {
            telemetry::init_logging(settings.log_format);
            match scorer::startup::optimize_model(&settings, &args.into) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("scorer optimize-model: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Serve) | None => serve(settings),
    }
}

fn serve(settings: Settings) -> ExitCode {
    telemetry::init_logging(settings.log_format);
    let outcome = actix_web::rt::System::new().block_on(async move {
        let application = Application::build(settings)?;
        application.run_until_stopped().await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            log::error!("{error}");
            ExitCode::from(EXIT_START_FAILED)
        }
    }
}
