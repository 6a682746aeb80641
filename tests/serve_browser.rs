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

/// `infer`'s probabilities for `image` under `run_dir`, by class name.
fn infer_probabilities(run_dir: &Path, image: &Path) -> Vec<(String, f64)> {
    let output = run(&[
        "infer",
        "--json",
        "--top",
        "10",
        "--artifact-dir",
        run_dir.to_str().unwrap(),
        image.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let results: Value = serde_json::from_str(&stdout(&output)).unwrap();
    common::serve::ranked(&results[0]["top"])
}

/// The first exported test image.
fn first_test_image(data_dir: &Path, images: &Path) -> PathBuf {
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
    std::fs::read_dir(class_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

/// What the page shows after an upload.
struct Shown {
    /// The prediction's line.
    prediction: String,
    /// Each bar's class and probability.
    bars: Vec<(String, f64)>,
    /// The network's view of the image, a data URL.
    seen: String,
    /// Whether the result area was shown before the first prediction.
    result_shown_before: bool,
    /// With "show where the network looked" ticked: the heatmap (a data URL), its caption and
    /// its opacity after the slider was set to 30.
    heat: (String, String, String),
    /// The heatmap's alt text once Grad-CAM++ is picked as the method.
    plus_plus_alt: String,
}

/// Serves `run_dir`, uploads `image` through the page's file control in headless Chromium and
/// reads back what the page shows (saving a screenshot to `ALEXNET_SCREENSHOT` if set).
async fn upload_on_page(run_dir: &Path, image: &Path) -> Shown {
    let server = Server::start(run_dir, &[]);
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
    // Two crypto providers are compiled in (see Cargo.toml): name one.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
    let result = client.find(Locator::Id("result")).await.unwrap();
    let result_shown_before = result.is_displayed().await.unwrap();
    let file = client.find(Locator::Id("file")).await.unwrap();
    file.send_keys(image.to_str().unwrap()).await.unwrap();
    let prediction = client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::XPath(
            "//p[@id='prediction'][normalize-space(.) != '']",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut bars = Vec::new();
    for bar in client.find_all(Locator::Css("#bars li")).await.unwrap() {
        let label = bar.attr("data-label").await.unwrap().unwrap();
        let p: f64 = bar
            .attr("data-probability")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        bars.push((label, p));
    }
    let seen = client.find(Locator::Id("seen")).await.unwrap();
    let seen = seen.attr("src").await.unwrap().unwrap_or_default();
    let heat = explain_on_page(&client).await;
    let plus_plus_alt = pick_grad_cam_plus_plus(&client).await;
    if let Some(path) = std::env::var_os("ALEXNET_SCREENSHOT") {
        std::fs::write(&path, client.screenshot().await.unwrap()).unwrap();
    }
    client.close().await.unwrap();
    Shown {
        prediction,
        bars,
        seen,
        result_shown_before,
        heat,
        plus_plus_alt,
    }
}

/// Picks Grad-CAM++ in the method list and waits for its heatmap: its alt text.
async fn pick_grad_cam_plus_plus(client: &fantoccini::Client) -> String {
    let script = "const s = document.getElementById('explain-method'); s.value = 'gradcam++'; \
                  s.dispatchEvent(new Event('change'));";
    client.execute(script, vec![]).await.unwrap();
    let heat = client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::XPath(
            "//img[@id='heat'][starts-with(@alt, 'Grad-CAM++')]",
        ))
        .await
        .unwrap();
    heat.attr("alt").await.unwrap().unwrap_or_default()
}

/// Ticks "show where the network looked", waits for the heatmap over the image, and sets its
/// opacity to 30: (its source, the caption, its opacity).
async fn explain_on_page(client: &fantoccini::Client) -> (String, String, String) {
    client
        .find(Locator::Id("explain"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let heat = client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::XPath(
            "//img[@id='heat'][starts-with(@src, 'data:image/png')]",
        ))
        .await
        .unwrap();
    assert!(heat.is_displayed().await.unwrap(), "the heatmap is shown");
    let script = "const s = document.getElementById('opacity'); s.value = 30; \
                  s.dispatchEvent(new Event('input')); \
                  return document.getElementById('heat').style.opacity;";
    let opacity = client.execute(script, vec![]).await.unwrap();
    let caption = client.find(Locator::Id("seen-caption")).await.unwrap();
    (
        heat.attr("src").await.unwrap().unwrap_or_default(),
        caption.text().await.unwrap(),
        opacity.as_str().unwrap_or_default().to_string(),
    )
}

/// The page's prediction and bars are `infer`'s.
fn check_agrees_with_infer(shown: &Shown, expected: &[(String, f64)]) {
    let (best, best_p) = &expected[0];
    assert!(
        shown.prediction.starts_with(best.as_str()),
        "the page says {:?}, infer {best} {best_p}",
        shown.prediction
    );
    assert_eq!(shown.bars.len(), expected.len(), "{:?}", shown.bars);
    for (label, p) in expected {
        let (_, on_page) = shown.bars.iter().find(|(l, _)| l == label).unwrap();
        assert!(
            (on_page - p).abs() < 1e-6,
            "{label}: page {on_page}, infer {p}"
        );
    }
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
    let image = first_test_image(&data_dir, images.path());
    let expected = infer_probabilities(&run_dir, &image);
    let shown = upload_on_page(&run_dir, &image).await;
    check_agrees_with_infer(&shown, &expected);
    assert!(
        shown.seen.starts_with("data:image/png;base64,"),
        "the page shows the network's view"
    );
    assert!(
        !shown.result_shown_before,
        "no empty result area before a prediction"
    );
    let (heat, caption, opacity) = &shown.heat;
    assert!(heat.starts_with("data:image/png;base64,"), "{heat}");
    let best = &expected[0].0;
    assert!(caption.contains(&format!("looked for {best}")), "{caption}");
    assert_eq!(opacity, "0.3");
    let plus_plus = &shown.plus_plus_alt;
    assert_eq!(plus_plus, &format!("Grad-CAM++ heatmap of {best}"));
}

/// ImageNet's network on a real colour photo: the page agrees with `infer`, and the network's
/// view it shows is the photo in colour, torchvision's crop of it (Pillow's bytes, to one level
/// for the normalisation undone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_a_colour_photo_as_imagenets_network_sees_it() {
    use alexnet_model::{AlexNetConfig, Arch};
    use base64::Engine;
    if !browser_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let weights = tmp.path().join("alexnet.safetensors");
    let formula = common::state_dict::formula_of::<burn::backend::Flex>(&AlexNetConfig::for_arch(
        Arch::Imagenet,
    ));
    common::state_dict::write(&weights, &formula, None);
    let run_dir = tmp.path().join("run");
    let imported = run(&[
        "import",
        "--from",
        weights.to_str().unwrap(),
        "--artifact-dir",
        run_dir.to_str().unwrap(),
    ]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos");
    let photo = photos.join("chelsea.png");
    let expected = infer_probabilities(&run_dir, &photo);
    let shown = upload_on_page(&run_dir, &photo).await;
    check_agrees_with_infer(&shown, &expected);

    let png = shown
        .seen
        .strip_prefix("data:image/png;base64,")
        .expect("a PNG data URL");
    let png = base64::engine::general_purpose::STANDARD
        .decode(png)
        .unwrap();
    let seen = image::load_from_memory(&png).unwrap();
    assert_eq!(seen.color(), image::ColorType::Rgb8, "a colour picture");
    let pil = image::open(photos.join("chelsea.png.imagenet.png"))
        .unwrap()
        .to_rgb8();
    let seen = seen.to_rgb8();
    assert_eq!(seen.dimensions(), pil.dimensions());
    let worst = seen
        .as_raw()
        .iter()
        .zip(pil.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(
        worst <= 1,
        "the view is torchvision's crop: {worst} levels off"
    );
}
