//! What the server knows about itself: whether the model is loaded and warm, and whether it is
//! shutting down. Readiness is the conjunction of the two; liveness only needs the process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::classifier::Classifier;
use crate::metrics::Metrics;

pub struct ServerState {
    classifier: OnceLock<Arc<Classifier>>,
    shutting_down: AtomicBool,
    pub metrics: Arc<Metrics>,
}

/// Why the server cannot score right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unready {
    Loading,
    ShuttingDown,
}

impl ServerState {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { classifier: OnceLock::new(), shutting_down: AtomicBool::new(false), metrics }
    }

    /// Called once, after the warm-up inference succeeded.
    pub fn model_ready(&self, classifier: Classifier) {
        if self.classifier.set(Arc::new(classifier)).is_ok() {
            self.metrics.model_loaded.set(1);
        }
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// What the readiness probe reports: the classifier, unless loading or shutting down.
    pub fn readiness(&self) -> Result<&Arc<Classifier>, Unready> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(Unready::ShuttingDown);
        }
        self.classifier.get().ok_or(Unready::Loading)
    }

    /// The classifier once loaded. Scoring goes on while shutdown drains: requests a load
    /// balancer still sends during the drain are answered, not dropped.
    pub fn classifier(&self) -> Option<&Arc<Classifier>> {
        self.classifier.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_ready_while_loading_or_shutting_down() {
        let state = ServerState::new(Arc::new(Metrics::new()));
        assert_eq!(state.readiness().err(), Some(Unready::Loading));
        state.begin_shutdown();
        assert_eq!(state.readiness().err(), Some(Unready::ShuttingDown));
    }
}
