//! The optimised-model cache: a lean load on every start.
//!
//! ONNX Runtime optimises a graph while it loads it (fusions, and for convolutions a blocked
//! "NCHWc" weight layout), holding the original and the rewritten weights at once: for VGG16 that
//! transient, not inference, sets the process's peak memory. A graph saved after optimisation,
//! with its weights in a file of their own, loads with optimisation off and the weights mapped
//! from that file instead (measured with ONNX Runtime 1.31: VGG16 peak after load 81 MB instead of
//! 230-270, the same speed, bit-identical outputs).
//!
//! The saved graph is laid out for the CPU it was made on, so an entry is keyed by the ONNX
//! Runtime build, the CPU features that choose its kernels and the model's sha256. The
//! optimisation itself runs in a child process (`scorer optimize-model`): its peak is over, and its
//! memory returned, before the server loads the lean graph and serves. An entry records the sha256
//! of its files and the graph's output on a fixed input; a mismatch of either makes it stale, it is
//! removed and rebuilt. A cache that cannot be used never stops a start: the model then loads as
//! it would without one.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cpu;

/// Bumped when the layout of an entry changes.
const FORMAT: u32 = 1;
pub const MODEL_FILE: &str = "model.onnx";
pub const WEIGHTS_FILE: &str = "weights.bin";
const ENTRY_FILE: &str = "entry.json";

/// Where the cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOptions {
    pub dir: PathBuf,
}

/// What an entry is valid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    pub format: u32,
    /// ONNX Runtime's build string (version and commit).
    pub onnx_runtime: String,
    pub cpu_features: Vec<String>,
    pub model_sha256: String,
}

/// The graph's first output on `reference_input(sample_len)`, recorded when the entry was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub sample_len: usize,
    pub output: Vec<f32>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    key: Key,
    /// sha256 of each file of the entry.
    files: BTreeMap<String, String>,
    reference: Reference,
}

/// A valid entry: the graph to load and what it must answer.
#[derive(Debug)]
pub struct Cached {
    pub model: PathBuf,
    pub reference: Reference,
    dir: PathBuf,
}

impl Cached {
    /// Removes an entry that turned out not to work, so that the next start rebuilds it.
    pub fn discard(&self) {
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            log::warn!("could not remove the stale cache entry {}: {error}", self.dir.display());
        }
    }
}

impl Key {
    /// The key for `model` on this machine with the loaded ONNX Runtime.
    pub fn of(model: &Path) -> std::io::Result<Self> {
        Ok(Self {
            format: FORMAT,
            onnx_runtime: ort::info().to_owned(),
            cpu_features: cpu::features().into_iter().map(str::to_owned).collect(),
            model_sha256: sha256_file(model)?,
        })
    }

    /// The entry's folder name: a digest of the whole key.
    fn folder_name(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        hex(&Sha256::digest(text.as_bytes()))[..32].to_owned()
    }
}

/// The fixed input the reference output is computed on: a smooth pattern in [0, 1], so that the
/// graph's answer depends on every weight layout being the one it was saved with.
pub fn reference_input(sample_len: usize) -> Vec<f32> {
    (0..sample_len).map(|i| ((i as f32 * 0.618_034).sin() + 1.0) / 2.0).collect()
}

/// Whether `output` is what the entry recorded; a different CPU layout or a damaged file gives
/// other numbers.
pub fn matches_reference(reference: &Reference, output: &[f32]) -> bool {
    reference.output.len() == output.len()
        && reference.output.iter().zip(output).all(|(a, b)| (a - b).abs() <= 1e-4 + 1e-3 * a.abs())
}

/// A valid entry for `model`, building it first (in a child process) when there is none.
/// `None` when the cache cannot be used; the reason is logged.
pub fn prepare(options: &CacheOptions, model: &Path, model_dir: &Path) -> Option<Cached> {
    match try_prepare(options, model, model_dir) {
        Ok(cached) => Some(cached),
        Err(reason) => {
            log::warn!(
                "the optimised-model cache in {} cannot be used ({reason}); loading the model without it, \
                 with a higher memory peak at start-up",
                options.dir.display()
            );
            None
        }
    }
}

fn try_prepare(options: &CacheOptions, model: &Path, model_dir: &Path) -> Result<Cached, String> {
    ensure_private_dir(&options.dir)?;
    let key = Key::of(model).map_err(|e| format!("cannot read {}: {e}", model.display()))?;
    let dir = options.dir.join(key.folder_name());
    if dir.exists() {
        match validate(&dir, &key) {
            Ok(cached) => {
                log::info!("loading the optimised graph from the cache: {}", dir.display());
                return Ok(cached);
            }
            Err(reason) => {
                log::warn!("the cache entry {} is stale or damaged ({reason}); rebuilding it", dir.display());
                std::fs::remove_dir_all(&dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
            }
        }
    }
    build(&options.dir, &dir, model_dir)?;
    validate(&dir, &key)
}

/// Runs `scorer optimize-model` for the model folder into a staging folder, then moves the
/// finished entry into place in one rename.
fn build(cache_dir: &Path, dir: &Path, model_dir: &Path) -> Result<(), String> {
    let staging = cache_dir.join(format!(".staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    log::info!("optimising the model for this machine in a child process (once; later starts load it from the cache)");
    let status = Command::new(exe)
        .arg("optimize-model")
        .arg("--model-dir")
        .arg(model_dir)
        .arg("--into")
        .arg(&staging)
        .stdin(Stdio::null())
        .status();
    if let Some(peak) = children_peak_rss_mb() {
        // What a memory limit must allow at start-up, beside the server's own figure.
        log::info!("the optimisation's peak memory (child process): {peak:.0} MB");
    }
    let outcome = match status {
        Ok(status) if status.success() => match std::fs::rename(&staging, dir) {
            Ok(()) => Ok(()),
            // Another process on this machine finished the same entry first: use that one.
            Err(_) if dir.join(ENTRY_FILE).is_file() => Ok(()),
            Err(error) => Err(format!("cannot move the entry into {}: {error}", dir.display())),
        },
        Ok(status) => Err(format!("scorer optimize-model failed ({status})")),
        Err(error) => Err(format!("cannot start scorer optimize-model: {error}")),
    };
    let _ = std::fs::remove_dir_all(&staging);
    outcome
}

/// The largest resident set of any finished child process (Linux and macOS report it).
fn children_peak_rss_mb() -> Option<f64> {
    #[cfg(unix)]
    {
        // SAFETY: getrusage only writes into the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } == 0 && usage.ru_maxrss > 0 {
            // Kilobytes on Linux.
            return Some(usage.ru_maxrss as f64 / 1024.0);
        }
    }
    None
}

/// Writes the entry's record once the child has saved the graph into `staging`.
pub fn write_entry(staging: &Path, key: Key, reference: Reference) -> Result<(), String> {
    let mut files = BTreeMap::new();
    for name in [MODEL_FILE, WEIGHTS_FILE] {
        let path = staging.join(name);
        let digest = sha256_file(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        files.insert(name.to_owned(), digest);
    }
    let entry = Entry { key, files, reference };
    let text = serde_json::to_string_pretty(&entry).map_err(|e| e.to_string())?;
    std::fs::write(staging.join(ENTRY_FILE), text).map_err(|e| format!("cannot write the entry: {e}"))
}

fn validate(dir: &Path, key: &Key) -> Result<Cached, String> {
    let text = std::fs::read_to_string(dir.join(ENTRY_FILE)).map_err(|e| format!("no readable {ENTRY_FILE}: {e}"))?;
    let entry: Entry = serde_json::from_str(&text).map_err(|e| format!("{ENTRY_FILE} does not parse: {e}"))?;
    if &entry.key != key {
        return Err("made for another model, ONNX Runtime or CPU".to_owned());
    }
    for name in [MODEL_FILE, WEIGHTS_FILE] {
        let expected = entry.files.get(name).ok_or_else(|| format!("{ENTRY_FILE} lists no {name}"))?;
        let actual = sha256_file(&dir.join(name)).map_err(|e| format!("cannot read {name}: {e}"))?;
        if &actual != expected {
            return Err(format!("{name} does not match its sha256"));
        }
    }
    Ok(Cached { model: dir.join(MODEL_FILE), reference: entry.reference, dir: dir.to_path_buf() })
}

/// Creates the cache folder readable by this user only, and refuses one that others could have
/// written to: a planted graph would be loaded and run.
fn ensure_private_dir(dir: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create it: {e}"))?;
        }
        let metadata = std::fs::metadata(dir).map_err(|e| e.to_string())?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        if !metadata.is_dir() {
            return Err("it is not a folder".to_owned());
        }
        if metadata.uid() != uid || metadata.permissions().mode() & 0o022 != 0 {
            return Err("it belongs to another user or others may write to it".to_owned());
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create it: {e}"))?;
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("cannot write to it: {e}"))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    fn key() -> Key {
        Key {
            format: FORMAT,
            onnx_runtime: "ORT Build Info: test".to_owned(),
            cpu_features: vec!["avx2".to_owned()],
            model_sha256: "ab".repeat(32),
        }
    }

    fn entry_in(dir: &Path) -> Reference {
        std::fs::write(dir.join(MODEL_FILE), b"graph").unwrap();
        std::fs::write(dir.join(WEIGHTS_FILE), b"weights").unwrap();
        let reference = Reference { sample_len: 3, output: vec![0.25, 0.75] };
        write_entry(dir, key(), reference.clone()).unwrap();
        reference
    }

    #[test]
    fn a_written_entry_validates_and_any_change_makes_it_stale() {
        let dir = TempDir::new("cache-validate");
        let reference = entry_in(&dir.0);
        let cached = validate(&dir.0, &key()).unwrap();
        assert_eq!(cached.reference, reference);
        assert_eq!(cached.model, dir.0.join(MODEL_FILE));

        let other_cpu = Key { cpu_features: vec!["avx512f".to_owned()], ..key() };
        assert!(validate(&dir.0, &other_cpu).unwrap_err().contains("another model"));

        std::fs::write(dir.0.join(WEIGHTS_FILE), b"weightz").unwrap();
        assert!(validate(&dir.0, &key()).unwrap_err().contains("weights.bin does not match"));

        std::fs::write(dir.0.join(ENTRY_FILE), b"{not json").unwrap();
        assert!(validate(&dir.0, &key()).unwrap_err().contains("does not parse"));
    }

    #[test]
    fn keys_name_their_folder_and_differ_by_every_field() {
        let base = key().folder_name();
        assert_eq!(base.len(), 32);
        assert_eq!(base, key().folder_name());
        assert_ne!(base, Key { onnx_runtime: "other".to_owned(), ..key() }.folder_name());
        assert_ne!(base, Key { model_sha256: "cd".repeat(32), ..key() }.folder_name());
    }

    #[test]
    fn the_reference_check_tolerates_rounding_only() {
        let reference = Reference { sample_len: 1, output: vec![0.5, 0.25, 0.25] };
        assert!(matches_reference(&reference, &[0.50001, 0.25, 0.25]));
        assert!(!matches_reference(&reference, &[0.45, 0.30, 0.25]));
        assert!(!matches_reference(&reference, &[0.5, 0.5]));
        let input = reference_input(1000);
        assert!(input.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(input.iter().any(|v| *v < 0.1) && input.iter().any(|v| *v > 0.9));
    }

    #[test]
    fn a_folder_others_can_write_is_refused() {
        let dir = TempDir::new("cache-private");
        let cache = dir.0.join("cache");
        ensure_private_dir(&cache).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o700);
            std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
            assert!(ensure_private_dir(&cache).unwrap_err().contains("others may write"));
        }
        let under_a_file = dir.0.join("file");
        std::fs::write(&under_a_file, b"").unwrap();
        assert!(ensure_private_dir(&under_a_file.join("cache")).is_err());
    }
}
