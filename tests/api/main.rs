//! Integration tests: the real binary, the real ONNX Runtime, the real model and real MRI
//! images, over real HTTP. Needs `scripts/setup.sh --test-data` first (scripts/test.sh runs it).

mod helpers;
mod images;

mod accuracy;
mod cache;
mod concurrency;
mod contract;
mod dicom;
mod errors;
mod evaluate;
mod explain;
mod forms;
mod int8;
mod lifecycle;
mod models;
mod resilience;
mod security;
mod ui;
mod v2;
