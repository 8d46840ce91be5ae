//! The model side: finding the files, reconciling the spec with the graph, opening ONNX
//! Runtime sessions, and turning images into samples and scores into predictions. No HTTP here.

pub mod cache;
pub mod cpu;
pub mod dicom;
pub mod discovery;
pub mod engine;
pub mod loader;
pub mod postprocess;
pub mod preprocess;
pub mod resample;
pub mod runtime;
pub mod spec;
