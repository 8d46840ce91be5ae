//! `scorer bench`: the numbers the HTTP server is measured against. The ceiling drives the same
//! ONNX Runtime sessions as the server (same options, same number side by side) in tight loops on
//! an already-preprocessed batch; the preprocessing figure times what the server does to one image before inference
//! (base64 decode, image decode, resize, normalise). Prints one JSON object on stdout.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Serialize;

use crate::input::decode_base64;
use crate::model::engine::{EngineError, InferenceEngine, OnnxEngine};
use crate::model::spec::BatchDim;
use crate::model::{discovery, loader, runtime};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// An image to preprocess and infer (e.g. tests/data/mri/Te-gl_0010.jpg).
    #[arg(long)]
    pub image: PathBuf,
    /// Timed runs per batch size (after two untimed ones).
    #[arg(long, default_value_t = 30)]
    pub iterations: usize,
    /// Batch sizes for the ceiling [default: 1 and max_batch_size].
    #[arg(long, value_delimiter = ',')]
    pub batch_sizes: Vec<usize>,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub intra_op_threads: usize,
    pub inference_sessions: usize,
    pub ceiling: Vec<Ceiling>,
    pub preprocess: Timing,
    /// This process's peak resident memory (VmHWM) after loading and running every batch size:
    /// what ONNX Runtime itself needs for the model, the floor under the server's figure.
    pub peak_rss_mb: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Ceiling {
    pub batch_size: usize,
    pub images_per_second: f64,
    /// Per model run.
    pub run: Timing,
}

#[derive(Debug, Serialize)]
pub struct Timing {
    pub iterations: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
}

impl Timing {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
        let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64;
        Self { iterations: samples.len(), mean_ms: mean, p50_ms: at(0.5), p90_ms: at(0.9) }
    }
}

/// Two untimed runs, then `iterations` timed ones.
fn drive(engine: &mut OnnxEngine, batch: &[f32], n: usize, iterations: usize) -> Result<Vec<Duration>, EngineError> {
    for _ in 0..2 {
        engine.infer(batch, n)?;
    }
    (0..iterations)
        .map(|_| {
            let started = Instant::now();
            engine.infer(batch, n).map(|_| started.elapsed())
        })
        .collect()
}

pub fn run(settings: &Settings, args: &BenchArgs) -> Result<BenchReport, Box<dyn std::error::Error>> {
    if args.iterations == 0 {
        return Err("--iterations must be at least 1".into());
    }
    let (environment, _) = runtime::init()?;
    let files = discovery::discover(&settings.model_folder())?;
    // As many sessions as the server runs, each driven by its own thread.
    let loader::LoadedModel { config, mut engines, .. } =
        loader::load(&environment, &files, &settings.engine_options())?;

    let encoded = std::fs::read(&args.image)?;
    let preprocessor = settings.classifier_options().preprocessor(&config.input);
    let sample = preprocessor.preprocess(&encoded)?;

    let fixed = match config.batch {
        BatchDim::Fixed(n) => Some(n),
        BatchDim::Dynamic => None,
    };
    let mut batch_sizes =
        if args.batch_sizes.is_empty() { vec![1, settings.max_batch_size] } else { args.batch_sizes.clone() };
    batch_sizes.retain(|&n| n > 0 && fixed.is_none_or(|fixed| n <= fixed));
    batch_sizes.dedup();

    let mut ceiling = Vec::new();
    for batch_size in batch_sizes {
        let batch: Vec<f32> = sample.iter().copied().cycle().take(sample.len() * batch_size).collect();
        let started = Instant::now();
        let per_session: Vec<Result<Vec<Duration>, EngineError>> = std::thread::scope(|scope| {
            let loops: Vec<_> = engines
                .iter_mut()
                .map(|engine| scope.spawn(|| drive(engine, &batch, batch_size, args.iterations)))
                .collect();
            loops.into_iter().map(|l| l.join().unwrap_or_else(|_| Err(EngineError::Run("panicked".into())))).collect()
        });
        let wall = started.elapsed();
        let mut runs = Vec::new();
        for session in per_session {
            runs.extend(session?);
        }
        let images_per_second = (batch_size * runs.len()) as f64 / wall.as_secs_f64();
        ceiling.push(Ceiling { batch_size, images_per_second, run: Timing::of(runs) });
    }

    let text = base64::engine::general_purpose::STANDARD.encode(&encoded);
    let mut preprocess = Vec::with_capacity(args.iterations);
    for _ in 0..args.iterations.max(20) {
        let started = Instant::now();
        let bytes = decode_base64(&text)?;
        std::hint::black_box(preprocessor.preprocess(&bytes)?);
        preprocess.push(started.elapsed());
    }

    Ok(BenchReport {
        model: config.name,
        intra_op_threads: settings.effective_intra_op_threads(),
        inference_sessions: engines.len(),
        ceiling,
        preprocess: Timing::of(preprocess),
        peak_rss_mb: peak_rss_mb(),
    })
}

/// VmHWM from /proc/self/status, where there is one (Linux).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
