//! The evaluation's result: built from the answers, written as `report.json`, and printed for
//! people.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::dataset::{Dataset, Item, LabelSource, Problem};
use super::metrics::{self, Agreement, Answer, Metrics};
use super::source::{Scores, SourceInfo};
use crate::http::types::RankedProbabilities;

/// One model's answers for every item, in item order, and how long they took.
pub struct Pass {
    pub info: SourceInfo,
    pub answers: Vec<Result<Scores, String>>,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub dataset: DatasetSummary,
    /// Class names, in the order of the confusion matrix's rows and columns.
    pub classes: Vec<String>,
    pub model: ModelReport,
    pub comparison: Option<Comparison>,
    pub images: Vec<ImageReport>,
    pub gates: Vec<Gate>,
    /// Every gate met (true when there is none).
    pub passed: bool,
}

#[derive(Debug, Serialize)]
pub struct DatasetSummary {
    pub dir: String,
    pub labels_from: LabelSource,
    /// Labelled images found.
    pub images: usize,
    /// Files skipped, images whose label the model does not know, and images that failed.
    pub problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
pub struct ModelReport {
    pub source: SourceInfo,
    pub metrics: Metrics,
    /// Images that could not be scored (unreadable, or an error answer).
    pub failed: usize,
    pub seconds: f64,
    pub images_per_second: f64,
}

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub model: ModelReport,
    #[serde(flatten)]
    pub agreement: Agreement,
    /// The image with the largest probability difference.
    pub max_abs_dp_image: Option<String>,
    /// Images the two models label differently.
    pub disagreements: Vec<String>,
    /// The second model's images per second ÷ the first's.
    pub speed_ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct ImageReport {
    pub file: String,
    pub true_label: String,
    #[serde(flatten)]
    pub answer: ImageAnswer,
    pub compare: Option<ImageAnswer>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ImageAnswer {
    Scored { label: String, confidence: f32, probabilities: RankedProbabilities },
    Failed { error: String },
}

impl ImageAnswer {
    pub fn label(&self) -> Option<&str> {
        match self {
            ImageAnswer::Scored { label, .. } => Some(label),
            ImageAnswer::Failed { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Gate {
    pub name: &'static str,
    pub threshold: f64,
    pub value: f64,
    pub met: bool,
}

/// What the run was asked to check.
#[derive(Debug, Clone, Copy, Default)]
pub struct Thresholds {
    pub min_accuracy: Option<f64>,
    pub min_agreement: Option<f64>,
}

pub fn build(
    dir: &Path,
    dataset: &Dataset,
    classes: Vec<String>,
    primary: Pass,
    compare: Option<Pass>,
    thresholds: Thresholds,
) -> Report {
    let mut problems = dataset.problems.clone();
    for item in dataset.items.iter().filter(|item| !classes.contains(&item.label)) {
        problems.push(Problem {
            file: item.name.clone(),
            problem: format!(
                "label `{}` is not one of the model's labels ({}); left out",
                item.label,
                classes.join(", ")
            ),
        });
    }
    let known = |item: &Item| classes.contains(&item.label);
    let primary_answers = answers(&classes, &dataset.items, &primary);
    let compare_answers = compare.as_ref().map(|pass| answers(&classes, &dataset.items, pass));
    for (item, answer) in dataset.items.iter().zip(&primary_answers) {
        if let (true, Err(error)) = (known(item), answer) {
            problems.push(Problem { file: item.name.clone(), problem: error.clone() });
        }
    }

    let model = model_report(&classes, &dataset.items, primary.info.clone(), &primary_answers, primary.seconds);
    let comparison = compare.as_ref().zip(compare_answers.as_ref()).map(|(pass, compare_answers)| {
        let pairs: Vec<(usize, (&Answer, &Answer))> = dataset
            .items
            .iter()
            .enumerate()
            .zip(primary_answers.iter().zip(compare_answers))
            .filter_map(|((index, item), pair)| match pair {
                (Ok(a), Ok(b)) if known(item) => Some((index, (a, b))),
                _ => None,
            })
            .collect();
        let agreement = metrics::agreement(&pairs.iter().map(|(_, pair)| *pair).collect::<Vec<_>>());
        let max_abs_dp_image = agreement.max_abs_dp_at.map(|at| dataset.items[pairs[at].0].name.clone());
        let disagreements = pairs
            .iter()
            .filter(|(_, (a, b))| a.predicted != b.predicted)
            .map(|(index, _)| dataset.items[*index].name.clone())
            .collect();
        let compared = model_report(&classes, &dataset.items, pass.info.clone(), compare_answers, pass.seconds);
        let speed_ratio =
            if model.images_per_second > 0.0 { compared.images_per_second / model.images_per_second } else { 0.0 };
        Comparison { model: compared, agreement, max_abs_dp_image, disagreements, speed_ratio }
    });

    let images = dataset
        .items
        .iter()
        .enumerate()
        .filter(|(_, item)| known(item))
        .map(|(index, item)| ImageReport {
            file: item.name.clone(),
            true_label: item.label.clone(),
            answer: image_answer(&primary.answers[index]),
            compare: compare.as_ref().map(|pass| image_answer(&pass.answers[index])),
        })
        .collect();

    let gates = gates(&model, comparison.as_ref(), thresholds);
    let passed = gates.iter().all(|g| g.met);
    Report {
        dataset: DatasetSummary {
            dir: dir.display().to_string(),
            labels_from: dataset.labels_from,
            images: dataset.items.len(),
            problems,
        },
        classes,
        model,
        comparison,
        images,
        gates,
        passed,
    }
}

fn answers(classes: &[String], items: &[Item], pass: &Pass) -> Vec<Result<Answer, String>> {
    items
        .iter()
        .zip(&pass.answers)
        .map(|(item, scores)| {
            let scores = scores.as_ref().map_err(Clone::clone)?;
            let truth = classes.iter().position(|c| *c == item.label).ok_or_else(|| "unknown label".to_owned())?;
            let (best, confidence) = scores.first().ok_or_else(|| "the answer lists no class".to_owned())?;
            let predicted = classes
                .iter()
                .position(|c| c == best)
                .ok_or_else(|| format!("the model answered `{best}`, which is not one of {}", classes.join(", ")))?;
            let probabilities = classes
                .iter()
                .map(|class| scores.iter().find(|(label, _)| label == class).map(|(_, p)| f64::from(*p)))
                .collect();
            Ok(Answer { truth, predicted, confidence: f64::from(*confidence), probabilities })
        })
        .collect()
}

fn model_report(
    classes: &[String],
    items: &[Item],
    source: SourceInfo,
    answers: &[Result<Answer, String>],
    seconds: f64,
) -> ModelReport {
    let known: Vec<&Result<Answer, String>> =
        items.iter().zip(answers).filter(|(item, _)| classes.contains(&item.label)).map(|(_, a)| a).collect();
    let scored: Vec<Answer> = known.iter().filter_map(|a| a.as_ref().ok().cloned()).collect();
    let failed = known.len() - scored.len();
    let images_per_second = if seconds > 0.0 { scored.len() as f64 / seconds } else { 0.0 };
    ModelReport { source, metrics: metrics::metrics(classes, &scored), failed, seconds, images_per_second }
}

fn image_answer(scores: &Result<Scores, String>) -> ImageAnswer {
    match scores {
        Ok(scores) => {
            let (label, confidence) = scores.first().cloned().unwrap_or_default();
            ImageAnswer::Scored { label, confidence, probabilities: RankedProbabilities(scores.clone()) }
        }
        Err(error) => ImageAnswer::Failed { error: error.clone() },
    }
}

fn gates(model: &ModelReport, comparison: Option<&Comparison>, thresholds: Thresholds) -> Vec<Gate> {
    let mut gates = Vec::new();
    if let Some(threshold) = thresholds.min_accuracy {
        let value = model.metrics.accuracy;
        gates.push(Gate { name: "min_accuracy", threshold, value, met: value >= threshold });
    }
    if let Some(threshold) = thresholds.min_agreement {
        let value = comparison.map_or(0.0, |c| c.agreement.agreement);
        gates.push(Gate { name: "min_agreement", threshold, value, met: comparison.is_some() && value >= threshold });
    }
    if !gates.is_empty() {
        // A gate holds only when every image was scored: an endpoint that failed half the
        // images must not pass on the other half.
        let failed = model.failed + comparison.map_or(0, |c| c.model.failed);
        gates.push(Gate { name: "max_failed_images", threshold: 0.0, value: failed as f64, met: failed == 0 });
    }
    gates
}

/// The summary printed on stdout.
pub fn summary(report: &Report) -> String {
    let mut out = String::new();
    let labels_from = match report.dataset.labels_from {
        LabelSource::ClassFolders => "class folders",
        LabelSource::LabelsCsv => "labels.csv",
    };
    let _ = writeln!(
        out,
        "{} labelled images in {} (labels from {labels_from})",
        report.dataset.images, report.dataset.dir
    );
    model_summary(&mut out, "Model", &report.model);
    per_class_table(&mut out, &report.classes, &report.model.metrics);
    confusion_table(&mut out, &report.classes, &report.model.metrics);
    if let Some(comparison) = &report.comparison {
        model_summary(&mut out, "Compared with", &comparison.model);
        per_class_table(&mut out, &report.classes, &comparison.model.metrics);
        let a = &comparison.agreement;
        let _ = writeln!(
            out,
            "Agreement: {:.4} ({}/{} images get the same label); |Δp| mean {:.5}, max {:.5}{}; speed {:.2}× the first model",
            a.agreement,
            a.agreeing,
            a.compared,
            a.mean_abs_dp,
            a.max_abs_dp,
            comparison.max_abs_dp_image.as_ref().map(|f| format!(" ({f})")).unwrap_or_default(),
            comparison.speed_ratio,
        );
        if comparison.disagreements.is_empty() {
            let _ = writeln!(out, "Disagreements: none");
        } else {
            let _ = writeln!(out, "Disagreements ({}):", comparison.disagreements.len());
            for file in &comparison.disagreements {
                let image = report.images.iter().find(|i| &i.file == file);
                let labels = image.map(|i| {
                    let compared = i.compare.as_ref().and_then(ImageAnswer::label).unwrap_or("-");
                    format!("true {}, first {}, second {compared}", i.true_label, i.answer.label().unwrap_or("-"))
                });
                let _ = writeln!(out, "  {file}: {}", labels.unwrap_or_default());
            }
        }
    }
    if !report.dataset.problems.is_empty() {
        let _ = writeln!(out, "Problems ({}):", report.dataset.problems.len());
        for problem in &report.dataset.problems {
            let _ = writeln!(out, "  {}: {}", problem.file, problem.problem);
        }
    }
    for gate in &report.gates {
        let _ = writeln!(
            out,
            "Gate {}: {:.4} against {:.4}: {}",
            gate.name,
            gate.value,
            gate.threshold,
            if gate.met { "met" } else { "NOT MET" }
        );
    }
    out
}

fn model_summary(out: &mut String, heading: &str, model: &ModelReport) {
    let m = &model.metrics;
    let name = model.source.name.as_deref().unwrap_or("(unnamed)");
    let version = model.source.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
    let _ = writeln!(
        out,
        "\n{heading}: {name}{version} ({}, {})\n  accuracy {:.4} ({}/{}), macro F1 {:.4}, expected calibration error {:.4}, {:.1} images/s{}",
        model.source.kind,
        model.source.location,
        m.accuracy,
        m.correct,
        m.scored,
        m.macro_f1,
        m.expected_calibration_error,
        model.images_per_second,
        if model.failed > 0 { format!(", {} FAILED", model.failed) } else { String::new() },
    );
}

fn per_class_table(out: &mut String, classes: &[String], metrics: &Metrics) {
    let width = classes.iter().map(String::len).max().unwrap_or(5).max(5);
    let _ = writeln!(out, "  {:width$}  precision  recall  f1      support", "class");
    for c in &metrics.per_class {
        let _ = writeln!(
            out,
            "  {:width$}  {:<9.4}  {:<6.4}  {:<6.4}  {}",
            c.label, c.precision, c.recall, c.f1, c.support
        );
    }
}

fn confusion_table(out: &mut String, classes: &[String], metrics: &Metrics) {
    let width = classes.iter().map(String::len).max().unwrap_or(5).max(5);
    let _ = write!(out, "  confusion (rows: true, columns: predicted)\n  {:width$}", "");
    for class in classes {
        let _ = write!(out, "  {class:>width$}");
    }
    let _ = writeln!(out);
    for (class, row) in classes.iter().zip(&metrics.confusion) {
        let _ = write!(out, "  {class:width$}");
        for count in row {
            let _ = write!(out, "  {count:>width$}");
        }
        let _ = writeln!(out);
    }
}
