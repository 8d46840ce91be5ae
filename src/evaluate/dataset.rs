//! The labelled images to evaluate on: one sub-folder per class (the ImageFolder convention), or a
//! `labels.csv` (`file,label`) at the top of the folder. Anything that cannot be used is recorded
//! as a problem naming the file, and the rest goes on.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The CSV file that, when present, gives the labels instead of the folder names.
pub const LABELS_CSV: &str = "labels.csv";

/// File extensions read as images; other files are reported and skipped.
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "gif", "tif", "tiff", "webp"];

/// How deep below a class folder images are looked for.
const MAX_DEPTH: usize = 8;

#[derive(Debug, Clone)]
pub struct Item {
    pub path: PathBuf,
    /// The path relative to the dataset folder, with `/` separators: how reports name the image.
    pub name: String,
    pub label: String,
}

/// A file that was skipped, or an image that could not be scored, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub file: String,
    pub problem: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelSource {
    ClassFolders,
    LabelsCsv,
}

#[derive(Debug)]
pub struct Dataset {
    pub labels_from: LabelSource,
    pub items: Vec<Item>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{0} is not a folder")]
    NotAFolder(PathBuf),
    #[error(
        "no labelled images in {0}: put them in one sub-folder per class (named as the model's labels), \
         or list them in {LABELS_CSV} (file,label)"
    )]
    Empty(PathBuf),
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
}

pub fn discover(dir: &Path) -> Result<Dataset, DatasetError> {
    if !dir.is_dir() {
        return Err(DatasetError::NotAFolder(dir.to_path_buf()));
    }
    let csv = dir.join(LABELS_CSV);
    let mut dataset = if csv.is_file() { from_csv(dir, &csv)? } else { from_class_folders(dir)? };
    if dataset.items.is_empty() {
        return Err(DatasetError::Empty(dir.to_path_buf()));
    }
    dataset.items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(dataset)
}

fn from_class_folders(dir: &Path) -> Result<Dataset, DatasetError> {
    let mut items = Vec::new();
    let mut problems = Vec::new();
    for entry in visible_entries(dir)? {
        let name = relative_name(dir, &entry);
        if entry.is_dir() {
            let label = entry.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            collect_images(dir, &entry, &label, 0, &mut items, &mut problems)?;
        } else {
            problems.push(Problem { file: name, problem: "not inside a class folder; skipped".to_owned() });
        }
    }
    Ok(Dataset { labels_from: LabelSource::ClassFolders, items, problems })
}

fn collect_images(
    root: &Path,
    dir: &Path,
    label: &str,
    depth: usize,
    items: &mut Vec<Item>,
    problems: &mut Vec<Problem>,
) -> Result<(), DatasetError> {
    for entry in visible_entries(dir)? {
        if entry.is_dir() {
            if depth < MAX_DEPTH {
                collect_images(root, &entry, label, depth + 1, items, problems)?;
            }
        } else if is_image_file(&entry) {
            items.push(Item { name: relative_name(root, &entry), path: entry, label: label.to_owned() });
        } else {
            problems.push(Problem {
                file: relative_name(root, &entry),
                problem: format!("not an image file ({}); skipped", IMAGE_EXTENSIONS.join(", ")),
            });
        }
    }
    Ok(())
}

fn from_csv(dir: &Path, csv_path: &Path) -> Result<Dataset, DatasetError> {
    let read_error = |reason: String| DatasetError::Read { path: csv_path.to_path_buf(), reason };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(csv_path)
        .map_err(|e| read_error(e.to_string()))?;
    let mut items = Vec::new();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (index, record) in reader.records().enumerate() {
        let line = index + 1;
        let at_line = |problem: String| Problem { file: format!("{LABELS_CSV}:{line}"), problem };
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                problems.push(at_line(format!("unreadable row: {error}")));
                continue;
            }
        };
        let fields: Vec<&str> = record.iter().collect();
        match fields.as_slice() {
            ["file", "label"] if line == 1 => {}
            [] | [""] => {}
            [file, label] if !file.is_empty() && !label.is_empty() => {
                let path = dir.join(file);
                if !seen.insert((*file).to_owned()) {
                    problems.push(at_line(format!("{file} is listed twice; the first row counts")));
                } else if !path.is_file() {
                    problems.push(Problem { file: (*file).to_owned(), problem: "listed but not found".to_owned() });
                } else {
                    items.push(Item { path, name: (*file).to_owned(), label: (*label).to_owned() });
                }
            }
            _ => problems.push(at_line("expected two fields, file,label".to_owned())),
        }
    }
    Ok(Dataset { labels_from: LabelSource::LabelsCsv, items, problems })
}

/// The entries of a folder, hidden ones (`.name`) left out, sorted.
fn visible_entries(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| DatasetError::Read { path: dir.to_path_buf(), reason: e.to_string() })?;
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
        .map(|entry| entry.path())
        .collect();
    paths.sort();
    Ok(paths)
}

fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn relative_name(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    #[test]
    fn class_folders_give_the_labels_and_stray_files_are_reported() {
        let dir = TempDir::new("dataset-folders");
        dir.file("glioma/a.jpg", "");
        dir.file("glioma/deeper/b.PNG", "");
        dir.file("notumor/c.jpeg", "");
        dir.file("notumor/notes.txt", "");
        dir.file("notumor/.DS_Store", "");
        dir.file("loose.jpg", "");
        let dataset = discover(&dir.0).unwrap();
        assert_eq!(dataset.labels_from, LabelSource::ClassFolders);
        let found: Vec<(&str, &str)> = dataset.items.iter().map(|i| (i.name.as_str(), i.label.as_str())).collect();
        assert_eq!(
            found,
            [("glioma/a.jpg", "glioma"), ("glioma/deeper/b.PNG", "glioma"), ("notumor/c.jpeg", "notumor")]
        );
        let problems: Vec<&str> = dataset.problems.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(problems, ["loose.jpg", "notumor/notes.txt"]);
    }

    #[test]
    fn a_labels_csv_wins_and_bad_rows_are_named() {
        let dir = TempDir::new("dataset-csv");
        dir.file("x/one.jpg", "");
        dir.file("two.png", "");
        dir.file("glioma/ignored.jpg", "");
        dir.file(
            LABELS_CSV,
            "file,label\nx/one.jpg, glioma\ntwo.png,pituitary\nmissing.jpg,glioma\ntwo.png,glioma\nonly-one-field\n",
        );
        let dataset = discover(&dir.0).unwrap();
        assert_eq!(dataset.labels_from, LabelSource::LabelsCsv);
        let found: Vec<(&str, &str)> = dataset.items.iter().map(|i| (i.name.as_str(), i.label.as_str())).collect();
        assert_eq!(found, [("two.png", "pituitary"), ("x/one.jpg", "glioma")]);
        let problems: Vec<String> = dataset.problems.iter().map(|p| format!("{}: {}", p.file, p.problem)).collect();
        assert_eq!(
            problems,
            [
                "missing.jpg: listed but not found",
                "labels.csv:5: two.png is listed twice; the first row counts",
                "labels.csv:6: expected two fields, file,label",
            ]
        );
    }

    #[test]
    fn an_empty_or_missing_folder_is_an_error_that_says_what_is_expected() {
        let dir = TempDir::new("dataset-empty");
        dir.file("glioma/readme.md", "");
        let error = discover(&dir.0).unwrap_err().to_string();
        assert!(error.contains("no labelled images") && error.contains(LABELS_CSV), "{error}");
        assert!(matches!(discover(Path::new("/nonexistent/images")), Err(DatasetError::NotAFolder(_))));
    }
}
