//! Raw output rows → labelled predictions: softmax for logits, the top class, and the top-k
//! probabilities keyed by label, highest first.

use super::spec::OutputKind;

/// The prediction for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The most likely class.
    pub label: String,
    /// Its probability.
    pub confidence: f32,
    /// (label, probability) per class, highest first (the top k when there are many classes).
    pub probabilities: Vec<(String, f32)>,
}

#[derive(Debug, Clone)]
pub struct Postprocessor {
    labels: Vec<String>,
    kind: OutputKind,
    top_k: usize,
}

impl Postprocessor {
    pub fn new(labels: Vec<String>, kind: OutputKind, top_k: usize) -> Self {
        let top_k = top_k.clamp(1, labels.len().max(1));
        Self { labels, kind, top_k }
    }

    /// `scores` is one output row, one value per label.
    pub fn predict(&self, scores: &[f32]) -> Prediction {
        self.rank(&self.probabilities(scores))
    }

    /// Every class's probability, in label order.
    pub fn probabilities(&self, scores: &[f32]) -> Vec<f32> {
        match self.kind {
            OutputKind::Probabilities => scores.to_vec(),
            OutputKind::Logits => softmax(scores),
        }
    }

    /// The prediction for a row of probabilities in label order.
    pub fn rank(&self, probabilities: &[f32]) -> Prediction {
        let mut ranked: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
        // Highest first; NaN (a broken model) sorts last instead of panicking.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(self.top_k);
        let (best, confidence) = ranked.first().copied().unwrap_or((0, f32::NAN));
        Prediction {
            label: self.labels.get(best).cloned().unwrap_or_default(),
            confidence,
            probabilities: ranked
                .into_iter()
                .map(|(i, p)| (self.labels.get(i).cloned().unwrap_or_default(), p))
                .collect(),
        }
    }
}

impl OutputKind {
    /// For a spec that does not say: rows of values in [0, 1] summing to one are probabilities.
    pub fn detect(row: &[f32]) -> OutputKind {
        let in_range = row.iter().all(|p| (0.0..=1.0).contains(p));
        let sum: f32 = row.iter().sum();
        if in_range && (sum - 1.0).abs() < 1e-3 { OutputKind::Probabilities } else { OutputKind::Logits }
    }
}

fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn probabilities_are_ranked_and_keyed_by_label() {
        let post =
            Postprocessor::new(labels(&["glioma", "meningioma", "notumor", "pituitary"]), OutputKind::Probabilities, 4);
        let prediction = post.predict(&[0.1, 0.7, 0.05, 0.15]);
        assert_eq!(prediction.label, "meningioma");
        assert_eq!(prediction.confidence, 0.7);
        let ranked: Vec<(&str, f32)> = prediction.probabilities.iter().map(|(l, p)| (l.as_str(), *p)).collect();
        assert_eq!(ranked, [("meningioma", 0.7), ("pituitary", 0.15), ("glioma", 0.1), ("notumor", 0.05)]);
    }

    #[test]
    fn logits_go_through_softmax_and_top_k_cuts_the_list() {
        let post = Postprocessor::new(labels(&["a", "b", "c"]), OutputKind::Logits, 2);
        let prediction = post.predict(&[1.0, 3.0, 2.0]);
        assert_eq!(prediction.label, "b");
        let expected = 3f32.exp() / (1f32.exp() + 2f32.exp() + 3f32.exp());
        assert!((prediction.confidence - expected).abs() < 1e-6);
        assert_eq!(prediction.probabilities.len(), 2);
        assert_eq!(prediction.probabilities[1].0, "c");
    }

    #[test]
    fn softmax_survives_large_logits() {
        let probabilities = softmax(&[1000.0, 1000.0]);
        assert_eq!(probabilities, [0.5, 0.5]);
    }

    #[test]
    fn detects_probability_rows() {
        assert_eq!(OutputKind::detect(&[0.25, 0.25, 0.5]), OutputKind::Probabilities);
        assert_eq!(OutputKind::detect(&[2.0, -1.0, 0.5]), OutputKind::Logits);
        assert_eq!(OutputKind::detect(&[0.2, 0.2, 0.2]), OutputKind::Logits);
    }
}
