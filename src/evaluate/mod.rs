//! `scorer evaluate DIR`: how well a model does on labelled images, and how closely a second
//! model (an INT8 copy, a new version) agrees with it. Scores every image through the same
//! classifier the server uses, or through a running server or endpoint (`--url`); prints the
//! figures and writes `report.json` and a self-contained `report.html`. `--min-accuracy` and
//! `--min-agreement` turn it into a release gate (exit code 1 when unmet).

mod dataset;
mod html;
mod metrics;
mod report;
mod source;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use self::dataset::{Dataset, DatasetError};
use self::report::{Pass, Report, Thresholds};
use self::source::{SendAs, Source, SourceError};
use crate::model::runtime::{self, RuntimeError};
use crate::settings::{Secret, Settings};

#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// Folder of labelled images: one sub-folder per class, named as the model's labels, or a
    /// labels.csv (file,label) at its top.
    pub dir: PathBuf,
    /// Evaluate a running server or a deployed endpoint (its scoring URL, e.g.
    /// https://<endpoint>.<region>.inference.ml.azure.com/score) instead of the model in-process.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// With --url: the environment variable holding the key, sent as `Authorization: Bearer`
    /// when set.
    #[arg(long, value_name = "NAME", default_value = "SCORING_KEY")]
    pub key_env: String,
    /// With --url: the Azure ML deployment to score with (sent as `azureml-model-deployment`),
    /// whatever the endpoint's traffic split; e.g. int8 beside blue.
    #[arg(long, value_name = "NAME")]
    pub deployment: Option<String>,
    /// With --url: send each image as raw bytes or as JSON with base64.
    #[arg(long, value_enum, default_value_t = SendAs::Raw)]
    pub send_as: SendAs,
    /// Also score every image with the model in this folder, in-process, and compare the two.
    #[arg(long, value_name = "DIR")]
    pub compare_model_dir: Option<PathBuf>,
    /// Folder for report.json and report.html (created if needed).
    #[arg(long, value_name = "DIR", default_value = "evaluation")]
    pub out: PathBuf,
    /// Exit with 1 unless the accuracy is at least this (0 to 1).
    #[arg(long, value_name = "X")]
    pub min_accuracy: Option<f64>,
    /// Exit with 1 unless the two models give the same label to at least this share of the
    /// images (0 to 1; needs --compare-model-dir).
    #[arg(long, value_name = "X")]
    pub min_agreement: Option<f64>,
    /// Images in flight at once [default: enough to keep the in-process batches full; 8 with --url].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("none of the labels in the folder ({found}) is one of the model's labels ({model})")]
    NoKnownLabels { found: String, model: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("could not start the async runtime: {0}")]
    AsyncRuntime(std::io::Error),
}

impl EvaluateError {
    /// The runtime or a model could not be loaded (as opposed to bad arguments or images).
    pub fn is_start_failure(&self) -> bool {
        matches!(self, EvaluateError::Runtime(_) | EvaluateError::Source(_))
    }
}

/// Runs the evaluation; `Ok(true)` when every gate holds.
pub fn run(settings: &Settings, args: &EvaluateArgs) -> Result<bool, EvaluateError> {
    let thresholds = thresholds(args)?;
    let dataset = dataset::discover(&args.dir)?;
    for problem in &dataset.problems {
        eprintln!("warning: {}: {}", problem.file, problem.problem);
    }
    let async_runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(EvaluateError::AsyncRuntime)?;
    let needs_onnx_runtime = args.url.is_none() || args.compare_model_dir.is_some();
    let environment = if needs_onnx_runtime { Some(runtime::init()?.0) } else { None };

    let primary = match (&args.url, &environment) {
        (Some(url), _) => Source::remote(url, api_key(&args.key_env), args.send_as, args.deployment.as_deref())?,
        (None, Some(environment)) => Source::local(environment, &settings.model_folder(), settings)?,
        (None, None) => return Err(EvaluateError::Usage("no model to evaluate".to_owned())),
    };
    let concurrency = args.concurrency.unwrap_or_else(|| default_concurrency(settings, &primary)).max(1);
    let primary_pass = async_runtime.block_on(score_all(primary, &dataset, concurrency));
    let classes = classes(&primary_pass, &dataset)?;

    let compare_pass = match (&args.compare_model_dir, &environment) {
        (Some(dir), Some(environment)) => {
            let compare = Source::local(environment, dir, settings)?;
            let concurrency = args.concurrency.unwrap_or_else(|| default_concurrency(settings, &compare)).max(1);
            Some(async_runtime.block_on(score_all(compare, &dataset, concurrency)))
        }
        _ => None,
    };

    let report =
        report::build(&args.dir, &dataset, classes, primary_pass.pass, compare_pass.map(|p| p.pass), thresholds);
    print!("{}", report::summary(&report));
    write_reports(&report, &dataset, &args.out, settings.max_image_pixels)?;
    Ok(report.passed)
}

fn thresholds(args: &EvaluateArgs) -> Result<Thresholds, EvaluateError> {
    for (flag, value) in [("--min-accuracy", args.min_accuracy), ("--min-agreement", args.min_agreement)] {
        if value.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
            return Err(EvaluateError::Usage(format!("{flag} must be between 0 and 1")));
        }
    }
    if args.deployment.is_some() && args.url.is_none() {
        return Err(EvaluateError::Usage("--deployment needs --url".to_owned()));
    }
    if args.min_agreement.is_some() && args.compare_model_dir.is_none() {
        return Err(EvaluateError::Usage("--min-agreement needs --compare-model-dir".to_owned()));
    }
    Ok(Thresholds { min_accuracy: args.min_accuracy, min_agreement: args.min_agreement })
}

fn api_key(variable: &str) -> Option<Secret> {
    std::env::var(variable).ok().filter(|key| !key.trim().is_empty()).map(Secret::from)
}

/// In-process: two full batches per session plus one image per decoding thread, as the server's
/// own pipeline holds. Over HTTP: a handful, like a client that does not want to be refused.
fn default_concurrency(settings: &Settings, source: &Source) -> usize {
    match source {
        Source::Local { .. } => {
            let pipeline = 2 * settings.max_batch_size * settings.inference_sessions.max(1)
                + settings.effective_preprocess_threads();
            pipeline.min(settings.queue_capacity)
        }
        Source::Remote { .. } => 8,
    }
}

/// A finished pass, and the labels the model is known to have.
struct Scored {
    pass: Pass,
    labels: Vec<String>,
}

/// Scores every image, `concurrency` at a time, with a progress bar on stderr.
async fn score_all(mut source: Source, dataset: &Dataset, concurrency: usize) -> Scored {
    let name = source.info().name.clone().unwrap_or_else(|| source.info().location.clone());
    let progress = ProgressBar::new(dataset.items.len() as u64).with_prefix(name);
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} images, {per_sec}, eta {eta}") {
        progress.set_style(style.progress_chars("=> "));
    }
    let started = Instant::now();
    let source_ref = &source;
    let mut answers: Vec<_> = futures_util::stream::iter(dataset.items.iter().enumerate())
        .map(|(index, item)| {
            let path = item.path.clone();
            let progress = progress.clone();
            async move {
                let bytes = tokio::task::spawn_blocking(move || std::fs::read(path)).await;
                let answer = match bytes {
                    Ok(Ok(bytes)) => source_ref.score(Bytes::from(bytes)).await,
                    Ok(Err(error)) => Err(format!("cannot read the file: {error}")),
                    Err(_) => Err("reading the file panicked".to_owned()),
                };
                progress.inc(1);
                (index, answer)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    answers.sort_by_key(|(index, _)| *index);

    let mut labels = source.labels().map(<[String]>::to_vec).unwrap_or_default();
    let model = answers.iter().find_map(|(_, answer)| answer.as_ref().ok().and_then(|(_, model)| model.clone()));
    source.learn_model(model.as_ref());
    let answers: Vec<_> = answers.into_iter().map(|(_, answer)| answer.map(|(scores, _)| scores)).collect();
    if labels.is_empty() {
        // Over HTTP the labels are the ones the answers list.
        for scores in answers.iter().flatten() {
            for (label, _) in scores {
                if !labels.contains(label) {
                    labels.push(label.clone());
                }
            }
        }
        labels.sort();
    }
    eprintln!(
        "{}: {} images in {seconds:.1} s ({:.1} images/s)",
        source.info().name.as_deref().unwrap_or(&source.info().location),
        answers.len(),
        answers.iter().filter(|a| a.is_ok()).count() as f64 / seconds.max(1e-9),
    );
    Scored { pass: Pass { info: source.info().clone(), answers, seconds }, labels }
}

/// The model's labels; an error when the folder uses none of them (a wrong folder or model).
fn classes(scored: &Scored, dataset: &Dataset) -> Result<Vec<String>, EvaluateError> {
    let mut found: Vec<String> = dataset.items.iter().map(|item| item.label.clone()).collect();
    found.sort_unstable();
    found.dedup();
    if scored.labels.is_empty() {
        // Nothing answered over HTTP: the folder's labels, so that every failure is reported.
        return Ok(found);
    }
    if dataset.items.iter().any(|item| scored.labels.contains(&item.label)) {
        return Ok(scored.labels.clone());
    }
    Err(EvaluateError::NoKnownLabels { found: found.join(", "), model: scored.labels.join(", ") })
}

fn write_reports(report: &Report, dataset: &Dataset, out: &Path, max_pixels: u64) -> Result<(), EvaluateError> {
    let write_error = |path: &Path, source: std::io::Error| EvaluateError::Write { path: path.to_path_buf(), source };
    std::fs::create_dir_all(out).map_err(|e| write_error(out, e))?;
    let json_path = out.join("report.json");
    let json = serde_json::to_string_pretty(report).map_err(|e| write_error(&json_path, std::io::Error::other(e)))?;
    std::fs::write(&json_path, json + "\n").map_err(|e| write_error(&json_path, e))?;

    let paths: HashMap<&str, &Path> =
        dataset.items.iter().map(|item| (item.name.as_str(), item.path.as_path())).collect();
    let thumbnails: HashMap<String, String> = html::images_to_show(report)
        .into_iter()
        .filter_map(|file| {
            let thumbnail = html::thumbnail(paths.get(file.as_str())?, max_pixels)?;
            Some((file, thumbnail))
        })
        .collect();
    let html_path = out.join("report.html");
    std::fs::write(&html_path, html::render(report, &thumbnails)).map_err(|e| write_error(&html_path, e))?;
    println!("Report: {}, {}", json_path.display(), html_path.display());
    Ok(())
}
