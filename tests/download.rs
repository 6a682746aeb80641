//! `alexnet download` and `import --from URL` against a real HTTP server on 127.0.0.1 that
//! this test starts: a whole download checked against the hash in its name and then taken from
//! the cache, a body cut short and then resumed with a range request, a wrong hash, a URL that
//! does not answer, and a missing file. Each failure is one line and leaves no file behind but
//! a resumable part.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;

use sha2::{Digest, Sha256};

/// What the server does with a request for its one file.
#[derive(Clone, Copy)]
enum Behaviour {
    /// The whole file, or the part a `Range: bytes=N-` header asks for (206).
    Whole,
    /// Promises the whole file in Content-Length, sends only this many bytes and hangs up.
    CutAt(usize),
}

/// A one-file HTTP/1.1 server on 127.0.0.1 for at most `MAX_REQUESTS` requests; records the
/// Range header of each request it served.
struct Server {
    port: u16,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

const MAX_REQUESTS: usize = 8;

impl Server {
    fn start(path: &'static str, body: Vec<u8>, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&ranges);
        thread::spawn(move || {
            for stream in listener.incoming().take(MAX_REQUESTS) {
                let Ok(stream) = stream else { continue };
                let range = answer(stream, path, &body, behaviour);
                seen.lock().unwrap().push(range);
            }
        });
        Self { port, ranges }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn ranges(&self) -> Vec<Option<String>> {
        self.ranges.lock().unwrap().clone()
    }
}

/// Reads one request and answers it; returns its Range header.
fn answer(stream: TcpStream, path: &str, body: &[u8], behaviour: Behaviour) -> Option<String> {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("range")
        {
            range = Some(value.trim().to_string());
        }
    }
    let mut stream = stream;
    let requested = request_line.split_whitespace().nth(1).unwrap_or("");
    if requested != path {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        return range;
    }
    let start: usize = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse().ok())
        .unwrap_or(0);
    let head = match start {
        0 => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", body.len()),
        _ => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\n",
            body.len() - start,
            body.len() - 1,
            body.len()
        ),
    };
    let _ = stream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes());
    let sent = match behaviour {
        Behaviour::Whole => &body[start..],
        Behaviour::CutAt(n) => &body[start..n],
    };
    let _ = stream.write_all(sent);
    let _ = stream.flush();
    range
}

fn sha8(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes that stand for a weights file where only the transfer is tested.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn download(url: &str, cache: &Path) -> std::process::Output {
    let cache = cache.to_str().unwrap();
    common::run(&["download", url, "--cache-dir", cache])
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// One line on stderr, and the command failed.
fn one_line_failure(output: &std::process::Output) -> String {
    assert!(!output.status.success(), "{}", common::stdout(output));
    let err = common::stderr(output);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn a_torchvision_file_is_downloaded_checked_imported_and_then_taken_from_the_cache() {
    // A real state dict: d2l's network at 65 px.
    let dir = tempfile::tempdir().unwrap();
    let weights = formula_export(dir.path());
    let bytes = std::fs::read(&weights).unwrap();
    let name: &'static str =
        Box::leak(format!("/models/alexnet-test-{}.safetensors", sha8(&bytes)).into_boxed_str());
    let server = Server::start(name, bytes.clone(), Behaviour::Whole);
    let cache = dir.path().join("cache");
    let imported = dir.path().join("imported");
    let output = common::run(&[
        "import",
        "--from",
        &server.url(name),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--artifact-dir",
        imported.to_str().unwrap(),
        "--resize",
        "65",
    ]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let err = common::stderr(&output);
    assert!(err.contains("as its name says"), "{err}");
    let file_name = name.rsplit('/').next().unwrap();
    assert_eq!(files_in(&cache), vec![file_name.to_string()]);
    assert_eq!(std::fs::read(cache.join(file_name)).unwrap(), bytes);
    assert!(imported.join("model.mpk").is_file());
    // The second time, nothing is fetched.
    let again = download(&server.url(name), &cache);
    assert!(again.status.success(), "{}", common::stderr(&again));
    assert_eq!(
        common::stdout(&again).trim(),
        cache.join(file_name).to_str().unwrap()
    );
    assert!(common::stderr(&again).contains("in the cache"));
    assert_eq!(server.ranges().len(), 1, "one request in all");
}

/// d2l's network at 65 px with formula weights, in PyTorch's layout.
fn formula_export(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("d2l65.safetensors");
    let entries = common::state_dict::formula::<burn::backend::Flex>(65);
    common::state_dict::write(&path, &entries, None);
    path
}

#[test]
fn a_download_cut_short_says_so_and_the_next_try_resumes_it() {
    let bytes = payload(3_000_000);
    let name: &'static str =
        Box::leak(format!("/alexnet-cut-{}.pth", sha8(&bytes)).into_boxed_str());
    let cut = Server::start(name, bytes.clone(), Behaviour::CutAt(1_200_000));
    let cache = tempfile::tempdir().unwrap();
    let err = one_line_failure(&download(&cut.url(name), cache.path()));
    assert!(
        err.contains("cut short at 1200000 of 3000000 bytes") && err.contains("resume"),
        "{err}"
    );
    let file_name = name.trim_start_matches('/');
    let part = format!("{file_name}.part");
    assert_eq!(files_in(cache.path()), vec![part.clone()], "only the part");
    assert_eq!(
        std::fs::read(cache.path().join(&part)).unwrap(),
        &bytes[..1_200_000]
    );

    let whole = Server::start(name, bytes.clone(), Behaviour::Whole);
    let output = download(&whole.url(name), cache.path());
    assert!(output.status.success(), "{}", common::stderr(&output));
    assert_eq!(whole.ranges(), vec![Some("bytes=1200000-".to_string())]);
    assert!(
        common::stderr(&output).contains("1.8 MB more after 1.2 MB"),
        "{}",
        common::stderr(&output)
    );
    assert_eq!(files_in(cache.path()), vec![file_name.to_string()]);
    assert_eq!(std::fs::read(cache.path().join(file_name)).unwrap(), bytes);
}

#[test]
fn a_file_that_is_not_the_one_its_name_promises_is_refused_and_removed() {
    let bytes = payload(100_000);
    let wrong = sha8(b"another file");
    let name: &'static str = Box::leak(format!("/alexnet-owt-{wrong}.pth").into_boxed_str());
    let server = Server::start(name, bytes, Behaviour::Whole);
    let cache = tempfile::tempdir().unwrap();
    let err = one_line_failure(&download(&server.url(name), cache.path()));
    assert!(
        err.contains("not the file its name promises") && err.contains(&wrong),
        "{err}"
    );
    assert!(
        files_in(cache.path()).is_empty(),
        "{:?}",
        files_in(cache.path())
    );
}

#[test]
fn a_url_that_does_not_answer_or_has_no_file_is_one_line_and_writes_nothing() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let url = format!("http://127.0.0.1:{port}/alexnet-owt-7be5be79.pth");
    let err = one_line_failure(&download(&url, &cache));
    assert!(
        err.contains("cannot reach") && err.contains("--from"),
        "{err}"
    );
    assert!(!cache.exists(), "nothing written");

    let server = Server::start("/alexnet-owt-7be5be79.pth", payload(10), Behaviour::Whole);
    let err = one_line_failure(&download(&server.url("/missing-7be5be79.pth"), &cache));
    assert!(err.contains("HTTP 404"), "{err}");
    assert!(!cache.exists(), "nothing written");

    let imported = dir.path().join("run");
    let output = common::run(&[
        "import",
        "--from",
        &url,
        "--cache-dir",
        cache.to_str().unwrap(),
        "--artifact-dir",
        imported.to_str().unwrap(),
    ]);
    let err = one_line_failure(&output);
    assert!(err.contains("cannot reach"), "{err}");
    assert!(!imported.exists(), "no run written");
}

#[test]
fn the_default_is_torchvisions_imagenet_alexnet() {
    let help = common::stdout(&common::run(&["download", "--help"]));
    assert!(
        help.contains("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
        "{help}"
    );
}
