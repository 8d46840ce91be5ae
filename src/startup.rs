//! Start-up and shutdown.
//!
//! `build` does the quick checks that should fail before anything listens (the ONNX Runtime
//! library, the model files) and binds the port. `run_until_stopped` serves: liveness answers at
//! once while a background thread loads and warms up the model, then readiness turns 200. On
//! SIGTERM or SIGINT readiness turns 503, requests keep being accepted for `shutdown_drain_ms`,
//! then the listener closes and in-flight requests get `shutdown_timeout_secs` to finish.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{HttpServer, web};
use ort::environment::Environment;
use tokio::sync::oneshot;

use crate::classifier::{Classifier, StartError};
use crate::cpu_budget;
use crate::http::auth::ApiKey;
use crate::http::{self, RequestLimits};
use crate::metrics::Metrics;
use crate::model::discovery::{self, DiscoveryError, ModelFiles};
use crate::model::loader::{self, OpenError};
use crate::model::runtime::{self, RuntimeError};
use crate::settings::{Settings, SettingsError};
use crate::state::ServerState;

/// The CPU budget and what it sized, so a throttled or oversubscribed replica can be told from a
/// slow one.
fn log_thread_counts(settings: &Settings) {
    let intra = match settings.effective_intra_op_threads() {
        0 => "ONNX Runtime's default (one per physical core)".to_owned(),
        threads => threads.to_string(),
    };
    log::info!(
        "CPUs: {}; ONNX Runtime intra-op threads per session: {intra}; HTTP workers: {}; preprocess threads: {}",
        cpu_budget::detect(),
        settings.effective_http_workers(),
        settings.effective_preprocess_threads()
    );
}

/// Why the model could not be made ready: opening it, or warming it up.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Start(#[from] StartError),
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error("could not load the model: {0}")]
    Load(#[from] LoadError),
    #[error("could not listen on {address}: {source}")]
    Bind { address: String, source: std::io::Error },
    #[error("the HTTP server failed: {0}")]
    Server(#[source] std::io::Error),
    #[error(transparent)]
    Settings(SettingsError),
}

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    state: web::Data<ServerState>,
    settings: Settings,
    environment: Environment,
    files: ModelFiles,
}

impl Application {
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        let (environment, library) = runtime::init()?;
        log::info!("ONNX Runtime library: {}", library.display());

        log_thread_counts(&settings);

        let model_dir = settings.model_folder();
        let files = discovery::discover(&model_dir)?;
        log::info!("model folder {}: model file {}", model_dir.display(), files.onnx.display());

        let address = format!("{}:{}", settings.host, settings.port);
        let listener =
            TcpListener::bind(&address).map_err(|source| StartupError::Bind { address: address.clone(), source })?;
        let port = listener.local_addr().map_err(StartupError::Server)?.port();

        let state = web::Data::new(ServerState::new(Arc::new(Metrics::new())));
        let limits = web::Data::new(RequestLimits {
            max_body_bytes: settings.max_body_bytes,
            request_timeout: Duration::from_millis(settings.request_timeout_ms),
        });
        let api_key = settings.resolved_api_key().map_err(StartupError::Settings)?;
        if api_key.is_some() {
            log::info!("requests other than the probes need the API key (Authorization: Bearer)");
        }
        let demo_page = web::Data::new(http::ui::DemoPage::new(settings.ui, api_key.is_some()));
        if settings.ui {
            log::info!("the demo page is at /ui (ui = false turns it off)");
        }
        let api_key = web::Data::new(api_key.map(|key| ApiKey::new(key.expose())));
        let cors_allowed_origins = settings.cors_allowed_origins.clone();
        if !cors_allowed_origins.is_empty() {
            log::info!("CORS allows {}", cors_allowed_origins.join(", "));
        }
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            http::app(
                app_state.clone(),
                limits.clone(),
                api_key.clone(),
                demo_page.clone(),
                cors_allowed_origins.clone(),
            )
        })
        .workers(settings.effective_http_workers())
        .shutdown_timeout(settings.shutdown_timeout_secs)
        .disable_signals()
        .listen(listener)
        .map_err(StartupError::Server)?
        .run();
        log::info!("listening on http://{}:{port}", settings.host);
        Ok(Self { port, server, state, settings, environment, files })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until a signal stops the server (Ok) or the model fails to load (Err).
    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        let Self { server, state, settings, environment, files, .. } = self;
        let handle = server.handle();
        let mut serving = actix_web::rt::spawn(server);
        let load_failed = spawn_model_loader(environment, files, &settings, state.clone().into_inner());

        tokio::select! {
            served = &mut serving => {
                return served.map_err(|e| StartupError::Server(std::io::Error::other(e)))?.map_err(StartupError::Server);
            }
            Ok(error) = load_failed => {
                handle.stop(false).await;
                return Err(StartupError::Load(error));
            }
            signal = shutdown_signal() => {
                log::info!("{signal} received: readiness now answers 503");
                state.begin_shutdown();
            }
        }
        drain_and_stop(&handle, &settings).await;
        serving.await.map_err(|e| StartupError::Server(std::io::Error::other(e)))?.map_err(StartupError::Server)?;
        log::info!("shut down cleanly");
        Ok(())
    }
}

/// `scorer optimize-model`: writes the cache entry for the configured model into `staging`
/// (the child process of the optimised-model cache).
pub fn optimize_model(settings: &Settings, staging: &std::path::Path) -> Result<(), String> {
    let (environment, _) = runtime::init().map_err(|e| e.to_string())?;
    let files = discovery::discover(&settings.model_folder()).map_err(|e| e.to_string())?;
    loader::optimize_into(&environment, &files, settings.engine_options().session, staging)
}

/// Loads the model on its own thread; the returned channel yields only if loading fails.
fn spawn_model_loader(
    environment: Environment,
    files: ModelFiles,
    settings: &Settings,
    state: Arc<ServerState>,
) -> oneshot::Receiver<LoadError> {
    let engine_options = settings.engine_options();
    let classifier_options = settings.classifier_options();
    let (failed, load_failed) = oneshot::channel();
    let spawned = std::thread::Builder::new().name("model-loader".to_owned()).spawn(move || {
        let loaded = loader::load(&environment, &files, &engine_options).map_err(LoadError::from);
        let classifier = loaded.and_then(|model| {
            Classifier::new(model.config, model.engines, &classifier_options, Arc::clone(&state.metrics))
                .map_err(LoadError::from)
        });
        match classifier {
            Ok(classifier) => {
                state.model_ready(classifier);
                log::info!("ready: /ready answers 200");
            }
            Err(error) => {
                let _ = failed.send(error);
            }
        }
    });
    if let Err(error) = spawned {
        log::error!("could not start the model loader thread: {error}");
    }
    load_failed
}

async fn drain_and_stop(handle: &ServerHandle, settings: &Settings) {
    if settings.shutdown_drain_ms > 0 {
        log::info!("draining for {} ms before closing the listener", settings.shutdown_drain_ms);
        tokio::time::sleep(Duration::from_millis(settings.shutdown_drain_ms)).await;
    }
    log::info!("closing the listener; in-flight requests have {} s to finish", settings.shutdown_timeout_secs);
    handle.stop(true).await;
}

/// Resolves with the name of the first SIGTERM or SIGINT.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(error) => {
                log::warn!("cannot listen for SIGTERM ({error}); only SIGINT stops the server");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
