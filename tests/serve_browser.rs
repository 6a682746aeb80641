//! The page of `alexnet serve` in a real browser (Chromium through ChromeDriver, driven with
//! fantoccini): a real test image uploaded through the page's own file control, the predicted
//! class and probabilities read back from the page and checked against `alexnet infer`.
//!
//! Without Chromium and ChromeDriver the test says it is skipped, except under CI (`CI` set),
//! where it fails. `ALEXNET_SCREENSHOT=FILE` saves a screenshot of the page, and
//! `ALEXNET_SERVE_RUN=DIR` serves that run on a real test image instead of a run trained on
//! the synthetic set (the README's `docs/serve.png` is made with both).

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::serve::Server;
use common::{run, stderr, stdout, tiny_run_args};
use fantoccini::{ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn browser_available() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    let need = "this test needs Debian's chromium and chromium-driver: run `apt-get install -y \
                chromium chromium-driver`";
    assert!(std::env::var_os("CI").is_none(), "{need}");
    eprintln!("skipped: {need}");
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// ChromeDriver on a free port, once it answers.
fn start_chromedriver() -> (Killed, String) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (Killed(child), format!("http://127.0.0.1:{port}"))
}

/// The first exported test image and `infer`'s probabilities for it, by class name.
fn image_and_expected(
    run_dir: &Path,
    data_dir: &Path,
    images: &Path,
) -> (PathBuf, Vec<(String, f64)>) {
    let data = data_dir.display().to_string();
    let out = images.display().to_string();
    let exported = run(&[
        "export-images",
        "--limit",
        "10",
        "--out",
        &out,
        "--data-dir",
        &data,
    ]);
    assert!(exported.status.success(), "{}", stderr(&exported));
    let class_dir = std::fs::read_dir(images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let image = std::fs::read_dir(class_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let dir = run_dir.display().to_string();
    let output = run(&[
        "infer",
        "--json",
        "--top",
        "10",
        "--artifact-dir",
        &dir,
        image.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let results: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let expected = results[0]["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["label"].as_str().unwrap().to_string(),
                p["probability"].as_f64().unwrap(),
            )
        })
        .collect();
    (image, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_classifies_an_uploaded_image_as_infer_does() {
    if !browser_available() {
        return;
    }
    let trained = tempfile::tempdir().unwrap();
    let (run_dir, data_dir) = match std::env::var_os("ALEXNET_SERVE_RUN") {
        // A run trained on the real Fashion-MNIST, for a telling screenshot.
        Some(dir) => (
            PathBuf::from(dir),
            common::real_data().expect("the real data"),
        ),
        None => {
            let args = tiny_run_args(trained.path(), &["--epochs", "1"]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let output = run(&args);
            assert!(output.status.success(), "{}", stderr(&output));
            let synthetic = common::synthetic_data_dir().to_path_buf();
            (trained.path().to_path_buf(), synthetic)
        }
    };
    let images = tempfile::tempdir().unwrap();
    let (image, expected) = image_and_expected(&run_dir, &data_dir, images.path());

    let server = Server::start(&run_dir, &[]);
    let address = format!("http://{}", server.addr);
    let (_driver, driver_url) = start_chromedriver();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            // As root (CI) Chromium needs --no-sandbox; containers have a small /dev/shm.
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1000,1150",
            ],
        }),
    );
    let client = ClientBuilder::rustls()
        .expect("TLS roots load")
        .capabilities(capabilities)
        .connect(&driver_url)
        .await
        .expect("a browser session starts");

    client.goto(&address).await.unwrap();
    client
        .wait()
        .for_element(Locator::XPath("//p[@id='model'][contains(., 'classes')]"))
        .await
        .unwrap();
    let file = client.find(Locator::Id("file")).await.unwrap();
    file.send_keys(image.to_str().unwrap()).await.unwrap();
    let prediction = client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::XPath(
            "//p[@id='prediction'][normalize-space(.) != '']",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (best, best_p) = &expected[0];
    assert!(
        prediction.starts_with(best.as_str()),
        "the page says {prediction:?}, infer {best} {best_p}"
    );
    let mut shown = Vec::new();
    for bar in client.find_all(Locator::Css("#bars li")).await.unwrap() {
        let label = bar.attr("data-label").await.unwrap().unwrap();
        let p: f64 = bar
            .attr("data-probability")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        shown.push((label, p));
    }
    assert_eq!(shown.len(), expected.len(), "{shown:?}");
    for (label, p) in &expected {
        let (_, on_page) = shown.iter().find(|(l, _)| l == label).unwrap();
        assert!(
            (on_page - p).abs() < 1e-6,
            "{label}: page {on_page}, infer {p}"
        );
    }
    let seen = client.find(Locator::Id("seen")).await.unwrap();
    let src = seen.attr("src").await.unwrap().unwrap_or_default();
    assert!(
        src.starts_with("data:image/png;base64,"),
        "the page shows the network's view"
    );

    if let Some(path) = std::env::var_os("ALEXNET_SCREENSHOT") {
        std::fs::write(&path, client.screenshot().await.unwrap()).unwrap();
    }
    client.close().await.unwrap();
}
