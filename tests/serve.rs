//! `alexnet serve` through the binary on loopback: every route, the same probabilities as
//! `alexnet infer`, each kind of bad request, micro-batching, reloads and a graceful stop.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::serve::{Server, ranked};
use common::{ProcessDir, run, stderr, stdout, synthetic_data_dir, tiny_run_args};
use serde_json::Value;

/// A run trained for two epochs on the synthetic set (65 px), and PNG files of its test images.
struct Fixture {
    run: ProcessDir,
    images: ProcessDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let run_dir = ProcessDir::new("serve-run");
        let args = tiny_run_args(run_dir.path(), &["--epochs", "2"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let trained = run(&args);
        assert!(trained.status.success(), "{}", stderr(&trained));
        let images = ProcessDir::new("serve-images");
        let data = synthetic_data_dir().display().to_string();
        let out = images.path().display().to_string();
        let exported = run(&[
            "export-images",
            "--limit",
            "12",
            "--out",
            &out,
            "--data-dir",
            &data,
        ]);
        assert!(exported.status.success(), "{}", stderr(&exported));
        Fixture {
            run: run_dir,
            images,
        }
    })
}

/// The exported test images, sorted.
fn test_images() -> Vec<PathBuf> {
    let files = common::files_under(fixture().images.path());
    assert!(files.len() >= 10, "{files:?}");
    files
}

/// The requests the tests send a server.
trait Requests {
    fn get(&self, path: &str) -> Reply;
    fn predict(&self, query: &str, body: &[u8]) -> Reply;
}

impl Requests for Server {
    fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, &[], b"")
    }

    fn predict(&self, query: &str, body: &[u8]) -> Reply {
        request(self.addr, "POST", &format!("/v1/predict{query}"), &[], body)
    }
}

/// An HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {} {}", self.status, self.text()))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `error` line of a JSON error answer.
    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap().to_string()
    }
}

/// One request on its own connection (HTTP/1.1, `Connection: close`).
fn request(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (and close) before reading a body it refuses.
    let _ = stream.write_all(body);
    read_reply(&mut stream)
}

fn read_reply(stream: &mut TcpStream) -> Reply {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    }
}

/// `alexnet infer --json` on `files`, one per forward pass: each file's (label, probability)
/// list, all classes.
fn infer(run_dir: &Path, files: &[PathBuf], checkpoint: &str) -> Vec<Vec<(String, f64)>> {
    let mut args = vec![
        "infer".to_string(),
        "--json".into(),
        "--top".into(),
        "10".into(),
        "--batch-size".into(),
        "1".into(),
        "--checkpoint".into(),
        checkpoint.into(),
        "--artifact-dir".into(),
        run_dir.display().to_string(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let all: Value = serde_json::from_str(&stdout(&output)).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .map(|r| ranked(&r["top"]))
        .collect()
}

#[test]
fn every_route_answers_and_predictions_equal_infer() {
    let fixture = fixture();
    let server = Server::start(fixture.run.path(), &[]);
    let health = server.get("/healthz");
    assert_eq!((health.status, health.text().trim()), (200, "ok"));
    assert_eq!(server.get("/readyz").status, 200);
    let model = server.get("/v1/model").json();
    assert_eq!(model["classes"].as_array().unwrap().len(), 10);
    assert_eq!(
        (model["image_size"].as_u64(), model["channels"].as_u64()),
        (Some(65), Some(1))
    );
    assert!(model["parameters"].as_u64().unwrap() > 1_000_000, "{model}");
    assert_eq!(model["backend"], "flex");
    assert!(
        model["checkpoint"].as_str().unwrap().ends_with("model.mpk"),
        "{model}"
    );
    let page = server.get("/");
    assert!(
        page.text().contains("<canvas") && page.head.contains("text/html"),
        "{page:?}"
    );

    let files = test_images();
    let expected = infer(fixture.run.path(), &files, "final");
    for (file, expected) in files.iter().zip(&expected) {
        let reply = server.predict("?top=10", &std::fs::read(file).unwrap());
        assert_eq!(reply.status, 200, "{}", reply.text());
        let answer = reply.json();
        assert_eq!(&ranked(&answer["top"]), expected, "{}", file.display());
        assert_eq!(answer["image_size"], 65);
        assert_eq!(answer["classes"].as_array().unwrap().len(), 10);
    }
    // The default answer is the top 3, and a multipart upload is read as the raw body is.
    let bytes = std::fs::read(&files[0]).unwrap();
    let top3 = server.predict("", &bytes).json();
    assert_eq!(ranked(&top3["top"]), expected[0][..3].to_vec());
    let boundary = "XbOuNdArY";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(&bytes);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type = format!("Content-Type: multipart/form-data; boundary={boundary}");
    let multipart = request(server.addr, "POST", "/v1/predict", &[&content_type], &form);
    assert_eq!(ranked(&multipart.json()["top"]), expected[0][..3].to_vec());
    // The preview is the network's input as a PNG.
    let preview = server.predict("?preview=true", &bytes).json();
    assert!(
        preview["preview"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );

    let metrics = server.get("/metrics").text();
    for name in [
        "alexnet_http_requests_total{path=\"/v1/predict\",status=\"200\"}",
        "alexnet_predict_seconds_bucket",
        "alexnet_batch_size_bucket",
        "alexnet_queue_depth",
    ] {
        assert!(metrics.contains(name), "no {name} in\n{metrics}");
    }
}

#[test]
fn explain_answers_the_map_infer_draws_for_the_class_asked() {
    let fixture = fixture();
    let server = Server::start(fixture.run.path(), &[]);
    let file = &test_images()[0];
    let pictures = tempfile::tempdir().unwrap();
    let run_dir = fixture.run.path().display().to_string();
    let explain_dir = pictures.path().display().to_string();
    let file_arg = file.display().to_string();
    let infer = run(&[
        "infer",
        "--artifact-dir",
        &run_dir,
        &file_arg,
        "--explain",
        "--explain-dir",
        &explain_dir,
        "--json",
    ]);
    assert!(infer.status.success(), "{}", stderr(&infer));
    let expected: Value = serde_json::from_slice(&infer.stdout).unwrap();
    let expected = &expected[0]["explanation"];

    let body = std::fs::read(file).unwrap();
    let reply = request(server.addr, "POST", "/v1/explain?preview=true", &[], &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer = reply.json();
    let map = &answer["explanation"];
    assert_eq!(map["class"], answer["top"][0]["class"], "{answer}");
    assert_eq!(map["class"], expected["class"]);
    assert_eq!(map["label"], answer["top"][0]["label"]);
    let grid = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
            .collect()
    };
    let (ours, theirs) = (grid(&map["grid"]), grid(&expected["grid"]));
    assert_eq!(ours.len(), 9, "3x3 for d2l's network at 65 px: {map}");
    let diff = ours
        .iter()
        .zip(&theirs)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff < 1e-5, "serve and infer maps differ by {diff}");
    let png = map["png"]
        .as_str()
        .unwrap()
        .strip_prefix("data:image/png;base64,")
        .unwrap();
    let png = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, png).unwrap();
    let heatmap = image::load_from_memory(&png).unwrap();
    assert_eq!((heatmap.width(), heatmap.height()), (65, 65));
    assert!(
        answer["preview"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png")
    );

    let other = request(server.addr, "POST", "/v1/explain?class=9", &[], &body).json();
    assert_eq!(other["explanation"]["class"], 9);
    assert_eq!(other["explanation"]["method"], "gradcam");

    // Grad-CAM++, asked with the `+` escaped and typed as is (which a query reads as spaces).
    let infer = run(&[
        "infer",
        "--artifact-dir",
        &run_dir,
        &file_arg,
        "--explain",
        "--explain-method",
        "gradcam++",
        "--explain-dir",
        &explain_dir,
        "--json",
    ]);
    assert!(infer.status.success(), "{}", stderr(&infer));
    let expected: Value = serde_json::from_slice(&infer.stdout).unwrap();
    let expected = &expected[0]["explanation"];
    assert_eq!(expected["method"], "gradcam++");
    for query in ["?method=gradcam%2B%2B", "?method=gradcam++"] {
        let plus = request(
            server.addr,
            "POST",
            &format!("/v1/explain{query}"),
            &[],
            &body,
        );
        assert_eq!(plus.status, 200, "{query}: {}", plus.text());
        let map = &plus.json()["explanation"];
        assert_eq!(map["method"], "gradcam++", "{query}");
        let (ours, theirs) = (grid(&map["grid"]), grid(&expected["grid"]));
        let diff = ours
            .iter()
            .zip(&theirs)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            diff < 1e-5,
            "{query}: serve and infer maps differ by {diff}"
        );
    }
    assert!(
        server
            .predict("", &body)
            .json()
            .get("explanation")
            .is_none()
    );
    let metrics = server.get("/metrics").text();
    let counted = "alexnet_http_requests_total{path=\"/v1/explain\",status=\"200\"} 4";
    assert!(metrics.contains(counted), "no {counted} in\n{metrics}");
}

/// A PNG that states a 12000x12000 grey image: 144 MB decoded, from about 140 kB of zeros.
fn png_bomb() -> Vec<u8> {
    use flate2::{Compression, write::ZlibEncoder};
    let side = 12_000u32;
    let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
    let row = vec![0u8; side as usize + 1];
    for _ in 0..side {
        z.write_all(&row).unwrap();
    }
    common::grey_png(side, &z.finish().unwrap())
}

#[test]
fn bad_requests_get_their_status_and_one_line_and_the_server_keeps_serving() {
    let fixture = fixture();
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let server = Server::start(
        fixture.run.path(),
        &[
            "--max-body-mib",
            "1",
            "--request-timeout-s",
            "2",
            "--token-file",
            token_file.to_str().unwrap(),
        ],
    );
    let auth = "Authorization: Bearer s3cret-token";
    let good = std::fs::read(&test_images()[0]).unwrap();
    let post = |body: &[u8], query: &str| {
        request(
            server.addr,
            "POST",
            &format!("/v1/predict{query}"),
            &[auth],
            body,
        )
    };
    let explain = |body: &[u8], query: &str| {
        request(
            server.addr,
            "POST",
            &format!("/v1/explain{query}"),
            &[auth],
            body,
        )
    };
    let serving = || {
        assert_eq!(server.get("/healthz").status, 200);
        assert_eq!(post(&good, "").status, 200);
        assert_eq!(explain(&good, "").status, 200);
    };
    serving();

    let cases: Vec<(&str, Reply, u16, &str)> = vec![
        (
            "not an image",
            post(b"hello, world", ""),
            400,
            "not a readable image",
        ),
        ("empty", post(b"", ""), 400, "the body is empty"),
        (
            "truncated",
            post(&good[..good.len() / 2], ""),
            400,
            "not a readable image",
        ),
        ("bomb", post(&png_bomb(), ""), 400, "too large to decode"),
        (
            "over the limit",
            post(&vec![7u8; 3 << 20], ""),
            413,
            "--max-body-mib",
        ),
        ("top out of range", post(&good, "?top=11"), 400, "1 to 10"),
        (
            "explain: class out of range",
            explain(&good, "?class=10"),
            400,
            "class=10 is out of range: the model has 10 classes (use 0 to 9)",
        ),
        (
            "explain: bad class",
            explain(&good, "?class=two"),
            400,
            "&class=K",
        ),
        (
            "explain: unknown method",
            explain(&good, "?method=lime"),
            400,
            "unknown method `lime`: use method=gradcam or method=gradcam%2B%2B",
        ),
        (
            "a method to predict",
            post(&good, "?method=gradcam"),
            400,
            "post to /v1/explain",
        ),
        (
            "explain: over the limit",
            explain(&vec![7u8; 3 << 20], ""),
            413,
            "--max-body-mib",
        ),
        (
            "explain: no token",
            request(server.addr, "POST", "/v1/explain", &[], &good),
            401,
            "Authorization: Bearer",
        ),
        (
            "a class to predict",
            post(&good, "?class=2"),
            400,
            "post to /v1/explain?class=K",
        ),
        ("bad query", post(&good, "?top=three"), 400, "?top=K"),
        (
            "wrong method",
            request(server.addr, "GET", "/v1/predict", &[auth], b""),
            405,
            "use POST",
        ),
        (
            "no token",
            server.predict("", &good),
            401,
            "Authorization: Bearer",
        ),
        (
            "wrong token",
            request(
                server.addr,
                "POST",
                "/v1/predict",
                &["Authorization: Bearer nope"],
                &good,
            ),
            401,
            "wrong token",
        ),
        (
            "no such path",
            request(server.addr, "GET", "/v2/nothing", &[auth], b""),
            404,
            "no such path",
        ),
    ];
    for (name, reply, status, message) in cases {
        assert_eq!(reply.status, status, "{name}: {}", reply.text());
        let error = reply.error();
        assert!(error.contains(message), "{name}: {error}");
        assert!(!error.contains('\n'), "{name}: one line: {error}");
        serving();
    }
    // Probes need no token; the model description does.
    assert_eq!(server.get("/v1/model").status, 401);
    assert_eq!(
        request(server.addr, "GET", "/v1/model", &[auth], b"").status,
        200
    );

    // A client that sends its body one byte every 300 ms is answered 408 and dropped.
    let start = Instant::now();
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let head = format!(
        "POST /v1/predict HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: {}\r\n\r\n",
        good.len()
    );
    slow.write_all(head.as_bytes()).unwrap();
    for byte in &good {
        if slow.write_all(&[*byte]).is_err() || start.elapsed() > Duration::from_secs(4) {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let reply = read_reply(&mut slow);
    assert_eq!(reply.status, 408, "{}", reply.text());
    assert!(reply.error().contains("--request-timeout-s"));
    assert!(start.elapsed() < Duration::from_secs(10));
    serving();
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn concurrent_requests_share_forward_passes_and_a_full_queue_says_retry() {
    let fixture = fixture();
    let bytes = std::fs::read(&test_images()[0]).unwrap();
    let burst = |server: &Server, count: usize| -> Vec<Reply> {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..count)
                .map(|_| s.spawn(|| server.predict("", &bytes)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let batching = Server::start(fixture.run.path(), &["--max-wait-ms", "2000"]);
    // A lone request does not wait for company that is not coming.
    let lone = batching.predict("", &bytes).json();
    assert_eq!(lone["batch_size"], 1);
    let waited = lone["time_ms"].as_f64().unwrap();
    assert!(waited < 1000.0, "a lone request took {waited} ms");
    let replies = burst(&batching, 16);
    assert!(replies.iter().all(|r| r.status == 200));
    let largest = replies
        .iter()
        .map(|r| r.json()["batch_size"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(largest > 1, "requests that arrive together share a pass");

    let small = Server::start(
        fixture.run.path(),
        &["--queue", "1", "--max-batch", "1", "--max-wait-ms", "0"],
    );
    let replies = burst(&small, 32);
    let busy: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(
        replies.iter().all(|r| r.status == 200 || r.status == 503),
        "{replies:?}"
    );
    assert!(
        !busy.is_empty(),
        "32 requests at once overflow a queue of one"
    );
    assert!(
        busy[0].head.to_lowercase().contains("retry-after: 1"),
        "{}",
        busy[0].head
    );
    assert!(busy[0].error().contains("busy"));
    assert_eq!(small.predict("", &bytes).status, 200);
}

#[test]
fn sighup_reloads_a_good_record_and_refuses_a_corrupt_one() {
    let fixture = fixture();
    let run_dir = tempfile::tempdir().unwrap();
    copy_dir(fixture.run.path(), run_dir.path());
    let files = &test_images()[..4];
    let final_model = infer(run_dir.path(), files, "final");
    let epoch_one = infer(run_dir.path(), files, "1");
    assert_ne!(final_model, epoch_one, "the two records differ");
    let server = Server::start(run_dir.path(), &[]);
    let answers = |server: &Server| -> Vec<Vec<(String, f64)>> {
        files
            .iter()
            .map(|f| ranked(&server.predict("?top=10", &std::fs::read(f).unwrap()).json()["top"]))
            .collect()
    };
    assert_eq!(answers(&server), final_model);

    // The run's final model replaced by epoch 1's: served after SIGHUP.
    let model = run_dir.path().join("model.mpk");
    let checkpoint = run_dir.path().join("checkpoint").join("model-1.mpk");
    std::fs::copy(&checkpoint, &model).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for_log("SIGHUP: reloaded", 30);
    assert_eq!(answers(&server), epoch_one);

    // A corrupt record is refused; the model before it keeps serving.
    std::fs::write(&model, b"not a record at all").unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for_log("reload refused", 30);
    assert_eq!(answers(&server), epoch_one);
    let metrics = server.get("/metrics").text();
    assert!(
        metrics.contains("alexnet_reloads_total{outcome=\"refused\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("alexnet_reloads_total{outcome=\"ok\"} 1"),
        "{metrics}"
    );
    // Without a token, reloading over HTTP is refused.
    let reply = request(server.addr, "POST", "/v1/reload", &[], b"");
    assert_eq!(reply.status, 403);
    assert!(reply.error().contains("SIGHUP"));
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn post_reload_with_the_token_reloads() {
    let fixture = fixture();
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("token");
    std::fs::write(&token_file, "t0ken").unwrap();
    let server = Server::start(
        fixture.run.path(),
        &[
            "--checkpoint",
            "1",
            "--token-file",
            token_file.to_str().unwrap(),
        ],
    );
    let reply = request(
        server.addr,
        "POST",
        "/v1/reload",
        &["Authorization: Bearer t0ken"],
        b"",
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.json()["checkpoint"]
            .as_str()
            .unwrap()
            .ends_with("model-1.mpk")
    );
    server.wait_for_log("POST /v1/reload: reloaded", 10);
}

#[test]
fn sigterm_finishes_the_requests_in_flight_and_exits_cleanly() {
    let fixture = fixture();
    let mut server = Server::start(fixture.run.path(), &[]);
    let bytes = std::fs::read(&test_images()[0]).unwrap();
    let head = format!(
        "POST /v1/predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        bytes.len()
    );
    let (half, rest) = bytes.split_at(bytes.len() / 2);
    // Eight requests half uploaded when SIGTERM arrives, completed after it.
    let sent = std::sync::Barrier::new(9);
    let signalled = std::sync::Barrier::new(9);
    let statuses = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let mut stream = TcpStream::connect(server.addr).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(60)))
                        .unwrap();
                    stream.write_all(head.as_bytes()).unwrap();
                    stream.write_all(half).unwrap();
                    sent.wait();
                    signalled.wait();
                    stream.write_all(rest).unwrap();
                    read_reply(&mut stream).status
                })
            })
            .collect();
        sent.wait();
        std::thread::sleep(Duration::from_millis(100));
        server.signal(libc::SIGTERM);
        std::thread::sleep(Duration::from_millis(300));
        signalled.wait();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<u16>>()
    });
    assert_eq!(statuses, vec![200; 8], "{}", server.log());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}: {}", server.log());
    assert!(server.log().contains("stopping"));
    // Stopped: nothing listens any more.
    assert!(TcpStream::connect(server.addr).is_err());
}

#[test]
fn bad_flags_and_a_missing_run_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let fixture = fixture();
    let run_dir = fixture.run.path().to_str().unwrap();
    for (args, message) in [
        (
            vec![
                "serve",
                "--artifact-dir",
                dir.path().to_str().unwrap(),
                "--addr",
                "127.0.0.1:0",
            ],
            "config.json",
        ),
        (
            vec![
                "serve",
                "--artifact-dir",
                run_dir,
                "--token-file",
                empty.to_str().unwrap(),
            ],
            "is empty",
        ),
        (
            vec!["serve", "--artifact-dir", run_dir, "--max-batch", "0"],
            "at least 1",
        ),
        (
            vec![
                "serve",
                "--artifact-dir",
                run_dir,
                "--max-batch",
                "100000000",
            ],
            "--max-batch is too large",
        ),
        (
            vec![
                "serve",
                "--artifact-dir",
                run_dir,
                "--max-wait-ms",
                "99999999999",
            ],
            "--max-wait-ms 99999999999 is too long",
        ),
        (
            vec!["serve", "--artifact-dir", run_dir, "--queue", "100000000"],
            "--queue 100000000 is over",
        ),
        (
            vec![
                "serve",
                "--artifact-dir",
                run_dir,
                "--max-body-mib",
                "100000",
            ],
            "--max-body-mib must lie in",
        ),
    ] {
        let output = run(&args);
        assert!(!output.status.success());
        let err = stderr(&output);
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// A multipart form with one file field per image.
fn form(boundary: &str, images: &[&[u8]]) -> Vec<u8> {
    let mut form = Vec::new();
    for (i, image) in images.iter().enumerate() {
        form.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; \
                 filename=\"{i}.png\"\r\nContent-Type: image/png\r\n\r\n"
            )
            .as_bytes(),
        );
        form.extend_from_slice(image);
        form.extend_from_slice(b"\r\n");
    }
    form.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    form
}

#[test]
fn odd_requests_get_json_a_weak_token_is_warned_and_a_reload_of_other_classes_is_refused() {
    let fixture = fixture();
    let run_dir = tempfile::tempdir().unwrap();
    copy_dir(fixture.run.path(), run_dir.path());
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("token");
    std::fs::write(&token_file, "abc12\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = Server::start(
        run_dir.path(),
        &["--token-file", token_file.to_str().unwrap()],
    );
    let log = server.log();
    assert!(
        log.contains("has 5 characters, which can be guessed"),
        "{log}"
    );
    assert!(log.contains("can be read by other users"), "{log}");
    let good = std::fs::read(&test_images()[0]).unwrap();
    // The scheme is case-insensitive (RFC 7235).
    let lower = request(
        server.addr,
        "POST",
        "/v1/predict",
        &["authorization: bearer abc12"],
        &good,
    );
    assert_eq!(lower.status, 200, "{}", lower.text());
    let auth = "Authorization: Bearer abc12";
    let long_url = format!("/v1/predict?top=3&pad={}", "x".repeat(9000));
    let many: Vec<String> = (0..150).map(|i| format!("X-Extra-{i}: {i}")).collect();
    let mut many: Vec<&str> = many.iter().map(String::as_str).collect();
    many.push(auth);
    let boundary = "b0undary";
    let content_type = format!("Content-Type: multipart/form-data; boundary={boundary}");
    let cases = [
        (
            "a long URL",
            request(server.addr, "POST", &long_url, &[auth], &good),
            414,
            "over the server's limit of 8 KiB",
        ),
        (
            "150 headers",
            request(server.addr, "POST", "/v1/predict", &many, &good),
            431,
            "send fewer or smaller headers",
        ),
        (
            "two images in one form",
            request(
                server.addr,
                "POST",
                "/v1/predict",
                &[auth, &content_type],
                &form(boundary, &[&good, &good]),
            ),
            400,
            "more than one file",
        ),
    ];
    for (name, reply, status, message) in cases {
        assert_eq!(reply.status, status, "{name}: {}", reply.text());
        assert!(reply.error().contains(message), "{name}: {}", reply.error());
    }

    // The run's classes renamed under the server: the reload is refused, the old names serve.
    let config_path = run_dir.path().join("config.json");
    let config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(&config_path, config.replace("Sneaker", "Trainer")).unwrap();
    let reload = request(server.addr, "POST", "/v1/reload", &[auth], b"");
    assert_eq!(reload.status, 409, "{}", reload.text());
    assert!(
        reload.error().contains("other classes"),
        "{}",
        reload.error()
    );
    let model = request(server.addr, "GET", "/v1/model", &[auth], b"").json();
    assert!(model["classes"].to_string().contains("Sneaker"), "{model}");
}
