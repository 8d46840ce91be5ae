//! `report.html`: one self-contained page (inline CSS and SVG, thumbnails as data URLs, no script
//! and nothing fetched) with the confusion matrix as a heat map, per-class bars, the reliability
//! diagram and the images a model got wrong or the two models disagree on.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Cursor;
use std::path::Path;

use base64::Engine;
use image::{ImageFormat, ImageReader, Limits};

use super::metrics::Metrics;
use super::report::{ImageAnswer, ModelReport, Report};

/// Thumbnails are at most this many pixels on a side.
const THUMBNAIL_SIDE: u32 = 128;

/// At most this many thumbnails, so that a bad run on a large set still gives a page that opens.
pub const MAX_THUMBNAILS: usize = 120;

/// The files worth a thumbnail: misclassified by either model, or labelled differently by the two.
pub fn images_to_show(report: &Report) -> Vec<String> {
    report
        .images
        .iter()
        .filter(|image| {
            let wrong = |answer: &ImageAnswer| answer.label() != Some(image.true_label.as_str());
            wrong(&image.answer)
                || image.compare.as_ref().is_some_and(|c| wrong(c) || c.label() != image.answer.label())
        })
        .map(|image| image.file.clone())
        .take(MAX_THUMBNAILS)
        .collect()
}

/// A small JPEG of the image as a data URL, or `None` when it cannot be decoded.
pub fn thumbnail(path: &Path, max_pixels: u64) -> Option<String> {
    let mut reader = ImageReader::open(path).ok()?.with_guessed_format().ok()?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits);
    let image = reader.decode().ok()?.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE).into_rgb8();
    let mut jpeg = Cursor::new(Vec::new());
    image.write_to(&mut jpeg, ImageFormat::Jpeg).ok()?;
    Some(format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(jpeg.into_inner())))
}

pub fn render(report: &Report, thumbnails: &HashMap<String, String>) -> String {
    let mut page = String::new();
    let title = format!("Evaluation of {}", model_name(&report.model));
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title),
    );
    let _ = writeln!(
        page,
        "<p>{} labelled images in <code>{}</code>.</p>",
        report.dataset.images,
        escape(&report.dataset.dir)
    );
    gates(&mut page, report);
    model_section(&mut page, "Model", &report.model, &report.classes);
    if let Some(comparison) = &report.comparison {
        model_section(&mut page, "Compared with", &comparison.model, &report.classes);
        let a = &comparison.agreement;
        let _ = writeln!(
            page,
            "<section><h2>Agreement</h2><p class=\"figures\"><span>label agreement <b>{:.4}</b> ({}/{})</span>\
             <span>mean |Δp| <b>{:.5}</b></span><span>max |Δp| <b>{:.5}</b>{}</span><span>speed <b>{:.2}×</b> the first model</span></p>\
             <p>{} image(s) labelled differently.</p></section>",
            a.agreement,
            a.agreeing,
            a.compared,
            a.mean_abs_dp,
            a.max_abs_dp,
            comparison.max_abs_dp_image.as_ref().map(|f| format!(" ({})", escape(f))).unwrap_or_default(),
            comparison.speed_ratio,
            comparison.disagreements.len(),
        );
    }
    images_section(&mut page, report, thumbnails);
    problems_section(&mut page, report);
    page.push_str("</body>\n</html>\n");
    page
}

fn model_name(model: &ModelReport) -> String {
    let name = model.source.name.clone().unwrap_or_else(|| model.source.location.clone());
    match &model.source.version {
        Some(version) => format!("{name} {version}"),
        None => name,
    }
}

fn gates(page: &mut String, report: &Report) {
    if report.gates.is_empty() {
        return;
    }
    page.push_str("<section><h2>Gates</h2><ul>");
    for gate in &report.gates {
        let _ = write!(
            page,
            "<li class=\"{}\">{}: {:.4} against {:.4}: <b>{}</b></li>",
            if gate.met { "met" } else { "unmet" },
            gate.name,
            gate.value,
            gate.threshold,
            if gate.met { "met" } else { "NOT MET" }
        );
    }
    page.push_str("</ul></section>\n");
}

fn model_section(page: &mut String, heading: &str, model: &ModelReport, classes: &[String]) {
    let m = &model.metrics;
    let _ = writeln!(
        page,
        "<section><h2>{heading}: {}</h2><p class=\"source\">{} · <code>{}</code></p>\
         <p class=\"figures\"><span>accuracy <b>{:.4}</b> ({}/{})</span><span>macro F1 <b>{:.4}</b></span>\
         <span>expected calibration error <b>{:.4}</b></span><span><b>{:.1}</b> images/s</span>{}</p>",
        escape(&model_name(model)),
        model.source.kind,
        escape(&model.source.location),
        m.accuracy,
        m.correct,
        m.scored,
        m.macro_f1,
        m.expected_calibration_error,
        model.images_per_second,
        if model.failed > 0 {
            format!("<span class=\"unmet\"><b>{}</b> failed</span>", model.failed)
        } else {
            String::new()
        },
    );
    page.push_str("<div class=\"plots\">");
    confusion_heat_map(page, classes, m);
    class_bars(page, m);
    reliability_diagram(page, m);
    page.push_str("</div></section>\n");
}

fn confusion_heat_map(page: &mut String, classes: &[String], m: &Metrics) {
    let n = classes.len().max(1);
    let cell = 56.0;
    let left = 110.0;
    let top = 110.0;
    let size = left + cell * n as f64 + 10.0;
    let _ = write!(
        page,
        "<figure><svg role=\"img\" aria-label=\"confusion matrix\" width=\"{size}\" height=\"{h}\" viewBox=\"0 0 {size} {h}\">",
        h = top + cell * n as f64 + 10.0
    );
    for (i, label) in classes.iter().enumerate() {
        let centre = i as f64 * cell + cell / 2.0;
        let _ = write!(
            page,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>",
            left - 6.0,
            top + centre,
            escape(label)
        );
        let _ = write!(
            page,
            "<text transform=\"translate({},{}) rotate(-45)\">{}</text>",
            left + centre,
            top - 6.0,
            escape(label)
        );
    }
    for (i, row) in m.confusion.iter().enumerate() {
        let total: usize = row.iter().sum();
        for (j, count) in row.iter().enumerate() {
            let share = if total == 0 { 0.0 } else { *count as f64 / total as f64 };
            let (x, y) = (left + j as f64 * cell, top + i as f64 * cell);
            let text_colour = if share > 0.5 { "#fff" } else { "#222" };
            let _ = write!(
                page,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{cell}\" height=\"{cell}\" fill=\"{}\" stroke=\"#fff\"><title>true {}, predicted {}: {count}</title></rect>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" dominant-baseline=\"middle\" fill=\"{text_colour}\">{count}</text>",
                heat(share),
                escape(&classes[i]),
                escape(&classes[j]),
                x + cell / 2.0,
                y + cell / 2.0,
            );
        }
    }
    page.push_str("</svg><figcaption>Confusion matrix: rows true class, columns predicted; shade is the row's share.</figcaption></figure>");
}

fn class_bars(page: &mut String, m: &Metrics) {
    let group = 90.0;
    let bar = 22.0;
    let height = 160.0;
    let top = 20.0;
    let width = 40.0 + group * m.per_class.len().max(1) as f64;
    let _ = write!(
        page,
        "<figure><svg role=\"img\" aria-label=\"per-class precision, recall and F1\" width=\"{width}\" height=\"{h}\" viewBox=\"0 0 {width} {h}\">",
        h = top + height + 40.0
    );
    axis(page, 30.0, top, height, width);
    for (i, class) in m.per_class.iter().enumerate() {
        let x0 = 40.0 + i as f64 * group;
        for (k, (name, value, colour)) in [
            ("precision", class.precision, "#4878a8"),
            ("recall", class.recall, "#e08a3c"),
            ("F1", class.f1, "#5a9a5a"),
        ]
        .into_iter()
        .enumerate()
        {
            let h = value * height;
            let _ = write!(
                page,
                "<rect x=\"{}\" y=\"{}\" width=\"{bar}\" height=\"{h}\" fill=\"{colour}\"><title>{} {name}: {value:.4}</title></rect>",
                x0 + k as f64 * bar,
                top + height - h,
                escape(&class.label),
            );
        }
        let _ = write!(
            page,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x0 + 1.5 * bar,
            top + height + 16.0,
            escape(&class.label)
        );
        let _ = write!(
            page,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"small\">n={}</text>",
            x0 + 1.5 * bar,
            top + height + 30.0,
            class.support
        );
    }
    page.push_str(
        "</svg><figcaption>Per class: <span style=\"color:#4878a8\">■</span> precision, \
         <span style=\"color:#e08a3c\">■</span> recall, <span style=\"color:#5a9a5a\">■</span> F1.</figcaption></figure>",
    );
}

fn reliability_diagram(page: &mut String, m: &Metrics) {
    let side = 200.0;
    let (left, top) = (40.0, 20.0);
    let _ = write!(
        page,
        "<figure><svg role=\"img\" aria-label=\"reliability diagram\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">",
        w = left + side + 20.0,
        h = top + side + 40.0
    );
    axis(page, left - 10.0, top, side, left + side + 10.0);
    let _ = write!(
        page,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{top}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>",
        top + side,
        left + side
    );
    let width = side / m.reliability.len().max(1) as f64;
    for (i, bin) in m.reliability.iter().enumerate() {
        if let (Some(accuracy), Some(confidence)) = (bin.accuracy, bin.confidence) {
            let h = accuracy * side;
            let _ = write!(
                page,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{h}\" fill=\"#4878a8\" fill-opacity=\"0.8\">\
                 <title>confidence {:.1}–{:.1}: {} images, accuracy {accuracy:.3}, mean confidence {confidence:.3}</title></rect>",
                left + i as f64 * width + 1.0,
                top + side - h,
                width - 2.0,
                bin.lower,
                bin.upper,
                bin.count,
            );
        }
    }
    for tick in [0.0, 0.5, 1.0] {
        let _ = write!(
            page,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"small\">{tick:.1}</text>",
            left + tick * side,
            top + side + 14.0
        );
    }
    let _ = write!(
        page,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">confidence</text></svg>\
         <figcaption>Reliability: accuracy per confidence bin; the dashed diagonal is perfect calibration.</figcaption></figure>",
        left + side / 2.0,
        top + side + 30.0
    );
}

/// A vertical axis from 0 to 1 with a grid line at each quarter.
fn axis(page: &mut String, x: f64, top: f64, height: f64, right: f64) {
    for quarter in 0..=4 {
        let value = f64::from(quarter) / 4.0;
        let y = top + height - value * height;
        let _ = write!(
            page,
            "<line x1=\"{}\" y1=\"{y}\" x2=\"{right}\" y2=\"{y}\" stroke=\"#e4e4e4\"/><text x=\"{}\" y=\"{y}\" text-anchor=\"end\" dominant-baseline=\"middle\" class=\"small\">{value:.2}</text>",
            x + 10.0,
            x + 6.0,
        );
    }
}

fn images_section(page: &mut String, report: &Report, thumbnails: &HashMap<String, String>) {
    let shown = images_to_show(report);
    let _ = write!(page, "<section><h2>Misclassified or disagreeing images ({})</h2>", shown.len());
    if shown.is_empty() {
        page.push_str("<p>None: every image got its true label");
        if report.comparison.is_some() {
            page.push_str(" from both models");
        }
        page.push_str(".</p></section>\n");
        return;
    }
    page.push_str("<div class=\"thumbnails\">");
    for file in &shown {
        let Some(image) = report.images.iter().find(|i| &i.file == file) else { continue };
        let picture = match thumbnails.get(file) {
            Some(data_url) => format!("<img src=\"{data_url}\" alt=\"{}\">", escape(file)),
            None => "<div class=\"missing\">no preview</div>".to_owned(),
        };
        let mut caption =
            format!("<b>{}</b><br>true {}<br>{}", escape(file), escape(&image.true_label), answer_text(&image.answer));
        if let Some(compare) = &image.compare {
            let _ = write!(caption, "<br>second: {}", answer_text(compare));
        }
        let _ = write!(page, "<figure>{picture}<figcaption>{caption}</figcaption></figure>");
    }
    page.push_str("</div></section>\n");
}

fn answer_text(answer: &ImageAnswer) -> String {
    match answer {
        ImageAnswer::Scored { label, confidence, .. } => format!("{} ({confidence:.3})", escape(label)),
        ImageAnswer::Failed { error } => format!("failed: {}", escape(error)),
    }
}

fn problems_section(page: &mut String, report: &Report) {
    if report.dataset.problems.is_empty() {
        return;
    }
    let _ = write!(page, "<section><h2>Problems ({})</h2><ul>", report.dataset.problems.len());
    for problem in &report.dataset.problems {
        let _ = write!(page, "<li><code>{}</code>: {}</li>", escape(&problem.file), escape(&problem.problem));
    }
    page.push_str("</ul></section>\n");
}

/// White to dark blue.
fn heat(share: f64) -> String {
    let share = share.clamp(0.0, 1.0);
    let channel = |full: f64, dark: f64| (full + (dark - full) * share).round() as u8;
    format!("rgb({},{},{})", channel(247.0, 8.0), channel(251.0, 48.0), channel(255.0, 107.0))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}\
.figures span{display:inline-block;margin-right:1.5em}.source{color:#666}\
.plots{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}figure{margin:0}\
figcaption{font-size:12px;color:#555;max-width:340px}svg text{font-size:12px}svg .small{font-size:10px;fill:#666}\
.thumbnails{display:flex;flex-wrap:wrap;gap:1em}.thumbnails figure{width:150px}.thumbnails img{max-width:128px;display:block}\
.missing{width:128px;height:64px;background:#eee;color:#888;text-align:center;line-height:64px}\
.met{color:#1a7a1a}.unmet{color:#b00020}code{background:#f4f4f4;padding:0 .2em}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_html_would_read_as_markup() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    }

    #[test]
    fn the_heat_map_runs_from_white_to_dark_blue() {
        assert_eq!(heat(0.0), "rgb(247,251,255)");
        assert_eq!(heat(1.0), "rgb(8,48,107)");
    }
}
