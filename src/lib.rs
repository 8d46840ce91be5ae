//! `scorer`: an ONNX image-classification server implementing the Azure Machine Learning
//! inference contract. `main.rs` parses the command line; [`startup::Application`] wires the
//! rest together.

// Request paths must answer errors, never panic; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod batching;
pub mod bench;
pub mod classifier;
pub mod cli;
pub mod cpu_budget;
pub mod error_code;
pub mod evaluate;
pub mod explain;
pub mod healthcheck;
pub mod http;
pub mod input;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod model_input;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
#[cfg(test)]
mod testing;
