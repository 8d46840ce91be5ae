//! The demo page: served open with a strict CSP, off with `ui = false`, and driven in Debian's
//! Chromium against the real server (tests/browser/demo-page.mjs).

use std::process::Command;

use serde_json::Value;

use crate::helpers::{Launch, TempDir, repo_root};

#[tokio::test]
async fn the_page_is_served_open_with_a_strict_policy_and_can_be_turned_off() {
    let app = Launch::new().env("SCORER_API_KEY", "demo-key").spawn().await;
    for (path, content_type) in [("/ui", "text/html"), ("/ui/app.js", "text/javascript"), ("/ui/app.css", "text/css")] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path} is open without the key");
        let headers = response.headers();
        assert!(headers["content-type"].to_str().unwrap().starts_with(content_type), "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.starts_with("default-src 'none'") && policy.contains("script-src 'self'"), "{policy}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    let html = app.get("/ui").await.text().await.unwrap();
    assert!(html.contains(r#"data-api-key="required""#), "the page is told to ask for the key");
    assert_eq!(app.score_raw("image/jpeg", Vec::new()).await.status(), 401, "the API itself still needs the key");

    let off = Launch::new().env("SCORER_UI", "false").spawn().await;
    assert_eq!(off.get("/ui").await.status(), 404);
    let open = Launch::new().spawn().await;
    assert!(open.get("/ui").await.text().await.unwrap().contains(r#"data-api-key="none""#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_scores_an_mri_and_a_dicom_file_in_chromium() {
    let browser = repo_root().join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules is missing: run scripts/test.sh, or `npm ci --prefix tests/browser`"
    );
    let app = Launch::new().env("SCORER_API_KEY", "demo-key").spawn().await;
    let not_image = TempDir::new("ui-not-image");
    let text_file = not_image.path().join("notes.txt");
    std::fs::write(&text_file, "this is not an image\n").unwrap();
    let artefacts = repo_root().join("target/browser-artefacts");
    let output = Command::new("node")
        .arg(browser.join("demo-page.mjs"))
        .arg(app.url(""))
        .args(["--mri", &repo_root().join("tests/data/mri/Te-gl_0010.jpg").display().to_string()])
        .args(["--expect", "glioma"])
        .args(["--dicom", &repo_root().join("tests/data/dicom/MR_small.dcm").display().to_string()])
        .args(["--not-image", &text_file.display().to_string()])
        .args(["--artefacts", &artefacts.display().to_string()])
        .args(["--api-key", "demo-key"])
        .output()
        .expect("node runs (install Node.js)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the demo page failed in Chromium:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        app.logs()
    );
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    println!("{summary}");
    assert!(artefacts.join("demo-page-explained.png").is_file(), "the screenshot is saved");
}
