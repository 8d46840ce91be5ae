//! The figures of an evaluation, as pure functions of the answers: accuracy, per-class precision,
//! recall and F1, the confusion matrix, expected calibration error, and the agreement of two
//! models.

use serde::Serialize;

/// Bins of the reliability diagram and of the expected calibration error (equal width).
pub const CALIBRATION_BINS: usize = 10;

/// One scored image: the index of its true class, the index of the predicted class, and every
/// class's probability in class order (`None` where the answer did not list a class).
#[derive(Debug, Clone)]
pub struct Answer {
    pub truth: usize,
    pub predicted: usize,
    pub confidence: f64,
    pub probabilities: Vec<Option<f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassMetrics {
    pub label: String,
    /// Of the images predicted as this class, the share that are; 0 when none was.
    pub precision: f64,
    /// Of the images of this class, the share predicted as it; 0 when there are none.
    pub recall: f64,
    pub f1: f64,
    /// Images of this class.
    pub support: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct CalibrationBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    /// Share of the bin's images predicted right; `None` for an empty bin.
    pub accuracy: Option<f64>,
    /// Mean confidence of the bin's images; `None` for an empty bin.
    pub confidence: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub scored: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassMetrics>,
    /// Rows: true class; columns: predicted class; in class order.
    pub confusion: Vec<Vec<usize>>,
    /// Expected calibration error over `CALIBRATION_BINS` equal-width confidence bins: the
    /// count-weighted mean gap between a bin's accuracy and its mean confidence.
    pub expected_calibration_error: f64,
    pub reliability: Vec<CalibrationBin>,
}

pub fn metrics(classes: &[String], answers: &[Answer]) -> Metrics {
    let n = classes.len();
    let mut confusion = vec![vec![0usize; n]; n];
    for answer in answers {
        confusion[answer.truth][answer.predicted] += 1;
    }
    let correct = (0..n).map(|i| confusion[i][i]).sum::<usize>();
    let per_class: Vec<ClassMetrics> = classes
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let support: usize = confusion[i].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[i]).sum();
            let precision = ratio(confusion[i][i], predicted);
            let recall = ratio(confusion[i][i], support);
            let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
            ClassMetrics { label: label.clone(), precision, recall, f1, support }
        })
        .collect();
    let with_support: Vec<&ClassMetrics> = per_class.iter().filter(|c| c.support > 0).collect();
    let macro_f1 = if with_support.is_empty() {
        0.0
    } else {
        with_support.iter().map(|c| c.f1).sum::<f64>() / with_support.len() as f64
    };
    let reliability = reliability(answers);
    let expected_calibration_error = reliability
        .iter()
        .filter_map(|bin| Some(bin.count as f64 * (bin.accuracy? - bin.confidence?).abs()))
        .sum::<f64>()
        / answers.len().max(1) as f64;
    Metrics {
        scored: answers.len(),
        correct,
        accuracy: ratio(correct, answers.len()),
        macro_f1,
        per_class,
        confusion,
        expected_calibration_error,
        reliability,
    }
}

fn reliability(answers: &[Answer]) -> Vec<CalibrationBin> {
    (0..CALIBRATION_BINS)
        .map(|bin| {
            let in_bin: Vec<&Answer> = answers.iter().filter(|a| calibration_bin(a.confidence) == bin).collect();
            let count = in_bin.len();
            let mean = |f: &dyn Fn(&Answer) -> f64| {
                (count > 0).then(|| in_bin.iter().map(|a| f(a)).sum::<f64>() / count as f64)
            };
            CalibrationBin {
                lower: bin as f64 / CALIBRATION_BINS as f64,
                upper: (bin + 1) as f64 / CALIBRATION_BINS as f64,
                count,
                accuracy: mean(&|a| f64::from(u8::from(a.truth == a.predicted))),
                confidence: mean(&|a| a.confidence),
            }
        })
        .collect()
}

/// Bins are (lower, upper]; a confidence of 0 goes into the first.
fn calibration_bin(confidence: f64) -> usize {
    let scaled = (confidence * CALIBRATION_BINS as f64).ceil() as usize;
    scaled.clamp(1, CALIBRATION_BINS) - 1
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// How two models' answers on the same images compare.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    /// Images both models scored.
    pub compared: usize,
    /// Of those, how many got the same label from both.
    pub agreeing: usize,
    pub agreement: f64,
    /// Mean over every image and class of |p_a − p_b| (classes both answers list).
    pub mean_abs_dp: f64,
    /// The largest |p_a − p_b| over every image and class.
    pub max_abs_dp: f64,
    /// The image where that largest difference is (its index in the pairs given).
    #[serde(skip)]
    pub max_abs_dp_at: Option<usize>,
}

pub fn agreement(pairs: &[(&Answer, &Answer)]) -> Agreement {
    let agreeing = pairs.iter().filter(|(a, b)| a.predicted == b.predicted).count();
    let mut sum = 0.0;
    let mut values = 0usize;
    let mut max_abs_dp = 0.0;
    let mut max_abs_dp_at = None;
    for (index, (a, b)) in pairs.iter().enumerate() {
        for (pa, pb) in a.probabilities.iter().zip(&b.probabilities) {
            if let (Some(pa), Some(pb)) = (pa, pb) {
                let difference = (pa - pb).abs();
                sum += difference;
                values += 1;
                if difference > max_abs_dp || max_abs_dp_at.is_none() {
                    max_abs_dp = difference;
                    max_abs_dp_at = Some(index);
                }
            }
        }
    }
    Agreement {
        compared: pairs.len(),
        agreeing,
        agreement: ratio(agreeing, pairs.len()),
        mean_abs_dp: if values == 0 { 0.0 } else { sum / values as f64 },
        max_abs_dp,
        max_abs_dp_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(truth: usize, probabilities: &[f64]) -> Answer {
        let (predicted, confidence) = probabilities
            .iter()
            .copied()
            .enumerate()
            .fold((0, f64::MIN), |best, (i, p)| if p > best.1 { (i, p) } else { best });
        Answer { truth, predicted, confidence, probabilities: probabilities.iter().map(|p| Some(*p)).collect() }
    }

    fn labels() -> Vec<String> {
        ["a", "b", "c"].map(String::from).to_vec()
    }

    #[test]
    fn precision_recall_f1_and_the_confusion_matrix() {
        // a: 2 right, 1 called b; b: 1 right; c: 1 called a. Nothing predicted c.
        let answers = [
            answer(0, &[0.9, 0.05, 0.05]),
            answer(0, &[0.8, 0.1, 0.1]),
            answer(0, &[0.3, 0.6, 0.1]),
            answer(1, &[0.2, 0.7, 0.1]),
            answer(2, &[0.5, 0.2, 0.3]),
        ];
        let m = metrics(&labels(), &answers);
        assert_eq!(m.confusion, [[2, 1, 0], [0, 1, 0], [1, 0, 0]]);
        assert_eq!((m.scored, m.correct), (5, 3));
        assert!((m.accuracy - 0.6).abs() < 1e-12);
        let a = &m.per_class[0];
        assert!((a.precision - 2.0 / 3.0).abs() < 1e-12 && (a.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((a.f1 - 2.0 / 3.0).abs() < 1e-12);
        let b = &m.per_class[1];
        assert!((b.precision - 0.5).abs() < 1e-12 && (b.recall - 1.0).abs() < 1e-12);
        assert!((b.f1 - 2.0 / 3.0).abs() < 1e-12);
        let c = &m.per_class[2];
        assert_eq!((c.precision, c.recall, c.f1, c.support), (0.0, 0.0, 0.0, 1));
        assert!((m.macro_f1 - (2.0 / 3.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn calibration_error_is_the_weighted_gap_per_bin() {
        // Bin (0.8, 0.9]: two images at 0.9 and 0.85, one right: accuracy 0.5, confidence 0.875.
        // Bin (0.5, 0.6]: one at 0.6, right: accuracy 1, confidence 0.6.
        let answers = [answer(0, &[0.9, 0.1, 0.0]), answer(1, &[0.85, 0.15, 0.0]), answer(2, &[0.2, 0.2, 0.6])];
        let m = metrics(&labels(), &answers);
        let expected = (2.0 * (0.5f64 - 0.875).abs() + (1.0f64 - 0.6).abs()) / 3.0;
        assert!((m.expected_calibration_error - expected).abs() < 1e-12, "{}", m.expected_calibration_error);
        assert_eq!(m.reliability.iter().map(|b| b.count).collect::<Vec<_>>(), [0, 0, 0, 0, 0, 1, 0, 0, 2, 0]);
        assert_eq!(m.reliability[3].accuracy, None);
        assert_eq!(calibration_bin(1.0), 9);
        assert_eq!(calibration_bin(0.0), 0);
        assert_eq!(calibration_bin(0.1), 0);
    }

    #[test]
    fn agreement_and_probability_differences() {
        let a1 = answer(0, &[0.9, 0.1, 0.0]);
        let b1 = answer(0, &[0.8, 0.2, 0.0]);
        let a2 = answer(1, &[0.4, 0.6, 0.0]);
        let b2 = answer(1, &[0.7, 0.3, 0.0]);
        let result = agreement(&[(&a1, &b1), (&a2, &b2)]);
        assert_eq!((result.compared, result.agreeing), (2, 1));
        assert!((result.agreement - 0.5).abs() < 1e-12);
        assert!((result.max_abs_dp - 0.3).abs() < 1e-9);
        assert_eq!(result.max_abs_dp_at, Some(1));
        assert!((result.mean_abs_dp - (0.1 + 0.1 + 0.3 + 0.3) / 6.0).abs() < 1e-9);
    }
}
