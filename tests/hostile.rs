//! Hostile folders, flags and records through the binary: each kind of odd input found to hang,
//! relabel silently or abort has a test here, and a generator builds random hostile trees from
//! a seed (FIFOs, sockets, link loops, links into other classes, dangling links, names that are
//! not UTF-8, decompression bombs, files that vanish while training) and runs `train`, `eval`
//! and `infer` on each under a time limit. Every outcome must be an answer in bounded time: a
//! result, or one line, and no lock left behind.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use alexnet::data::path_text;
use common::{alexnet, folder_run_args, one_line_error, png_stating, run, stderr, stdout};
use image::{GrayImage, Luma};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `alexnet args` and waits at most `limit`; `None` when it had to be killed (a hang).
fn run_within(args: &[&str], limit: Duration) -> Option<Output> {
    let mut child = alexnet()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    status.map(|status| Output {
        status,
        stdout,
        stderr,
    })
}

/// A small grey image whose class is told by a bright row.
fn image(path: &Path, class: usize) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    GrayImage::from_fn(20, 20, |_, y| {
        Luma([if y as usize / 5 == class % 4 { 220 } else { 30 }])
    })
    .save_with_format(path, image::ImageFormat::Png)
    .unwrap();
}

fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
}

fn train(folder: &Path, run_dir: &Path, extra: &[&str]) -> Option<Output> {
    let args = folder_run_args(folder, run_dir, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_within(&args, Duration::from_secs(120))
}

/// The training and validation files of a run, by class name, as `images.json` records them.
fn recorded(run_dir: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run_dir.join("images.json")).unwrap()).unwrap();
    let classes: Vec<String> = serde_json::from_value(json["classes"].clone()).unwrap();
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for split in ["train", "val"] {
        for file in json[split].as_array().unwrap() {
            let class = &classes[file["label"].as_u64().unwrap() as usize];
            let path = path_text::decode(file["path"].as_str().unwrap());
            files.entry(class.clone()).or_default().push(path);
        }
    }
    files
}

/// Asserts that each `error:` line of `infer` but the last names a file of `tree`, and the last
/// counts them.
fn inputs_named(out: &Output, tree: &Path, what: &str) {
    let err = stderr(out);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    let (last, each) = errors
        .split_last()
        .unwrap_or_else(|| panic!("{what}: {err}"));
    assert!(last.contains("inputs could be read") || last.contains("inputs could not be read"));
    let tree = path_text::encode(tree);
    assert!(each.iter().all(|l| l.contains(&tree)), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
}

/// A tree under `dir` with `count` images of each of `classes` in each of `splits` (`""` for
/// a folder of class folders).
fn tree_of(dir: &Path, splits: &[&str], classes: &[&str], count: usize) -> PathBuf {
    let tree = dir.join("tree");
    for split in splits {
        for (label, class) in classes.iter().enumerate() {
            for i in 0..count {
                image(
                    &tree.join(split).join(class).join(format!("{i}.png")),
                    label,
                );
            }
        }
    }
    tree
}

#[test]
fn a_fifo_in_a_class_folder_is_passed_over_and_never_opened() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree_of(dir.path(), &[""], &["Bag", "Coat"], 6);
    mkfifo(&tree.join("Bag/x.png"));
    let run_dir = dir.path().join("run");
    let out = train(&tree, &run_dir, &[]).expect("train hung on a FIFO");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("left out: 1 FIFO, socket or device"),
        "{}",
        stdout(&out)
    );
    let limit = Duration::from_secs(60);
    let eval = ["eval", "--artifact-dir", s(&run_dir), "--images", s(&tree)];
    let eval = run_within(&eval, limit).expect("eval hung on a FIFO");
    assert!(eval.status.success(), "{}", stderr(&eval));
    let fifo = tree.join("Bag/x.png");
    let infer = ["infer", "--artifact-dir", s(&run_dir), s(&fifo)];
    let infer = run_within(&infer, limit).expect("infer hung on a FIFO");
    let line = one_line_error(&infer, "infer FIFO");
    assert!(line.contains("x.png is a FIFO"), "{}", stderr(&infer));
    let bag = tree.join("Bag");
    let folder = ["infer", "--artifact-dir", s(&run_dir), s(&bag)];
    let folder = run_within(&folder, limit).expect("infer hung on a folder with a FIFO");
    assert!(folder.status.success(), "{}", stderr(&folder));
}

#[test]
fn a_link_loop_or_a_link_into_another_class_does_not_relabel_images() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    for i in 0..5 {
        image(&tree.join(format!("Bag/{i}.png")), 0);
        image(&tree.join(format!("Coat/{i}.png")), 1);
        image(
            &tree.join(format!("Dress/{}/{i}.png", ["", "sub"][i % 2])),
            2,
        );
    }
    symlink("..", tree.join("Bag/loop")).unwrap();
    symlink("../Dress", tree.join("Bag/dresses")).unwrap();
    symlink("../Dress/sub", tree.join("Bag/some-dresses")).unwrap();
    let run_dir = dir.path().join("run");
    let out = train(&tree, &run_dir, &[]).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let files = recorded(&run_dir);
    for (class, paths) in &files {
        assert_eq!(paths.len(), 5, "{class}: {paths:?}");
        assert!(
            paths.iter().all(|p| p.starts_with(class)),
            "{class}: {paths:?}"
        );
    }
    assert!(
        stdout(&out).contains("3 links back into the folder"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn names_that_are_not_utf8_train_and_map_back_to_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree_of(dir.path(), &[""], &["a", "b"], 5);
    let latin1 = OsStr::from_bytes(b"caf\xe9.png");
    image(&tree.join("a").join(latin1), 0);
    let run_dir = dir.path().join("run");
    let out = train(&tree, &run_dir, &[]).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!run_dir.join("train.lock").exists());
    let files = recorded(&run_dir);
    assert!(
        files["a"].contains(&Path::new("a").join(latin1)),
        "{files:?}"
    );
    // infer's CSV and JSON lines name it so that it maps back to the file.
    let (csv, jsonl) = (dir.path().join("p.csv"), dir.path().join("p.jsonl"));
    let infer = run(&[
        "infer",
        "--artifact-dir",
        s(&run_dir),
        s(&tree.join("a")),
        "--csv",
        s(&csv),
        "--jsonl",
        s(&jsonl),
    ]);
    assert!(infer.status.success(), "{}", stderr(&infer));
    let wanted = tree.join("a").join(latin1);
    let csv = fs::read_to_string(&csv).unwrap();
    let row = csv.lines().find(|l| l.contains("caf")).unwrap();
    let path = path_text::decode(row.split(',').next().unwrap());
    assert_eq!(path, wanted, "{row}");
    let jsonl = fs::read_to_string(&jsonl).unwrap();
    let line = jsonl.lines().find(|l| l.contains("caf")).unwrap();
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(path_text::decode(value["input"].as_str().unwrap()), wanted);
}

#[test]
fn eval_reads_only_the_split_it_evaluates_and_can_leave_bad_images_out() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree_of(dir.path(), &["train", "val"], &["a", "b"], 4);
    let run_dir = dir.path().join("run");
    assert!(train(&tree, &run_dir, &[]).unwrap().status.success());
    fs::write(tree.join("train/a/bad.png"), "not a png").unwrap();
    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", "--artifact-dir", s(&run_dir), "--images", s(&tree)];
        args.extend(extra);
        run(&args)
    };
    let out = eval(&["--json"]);
    assert!(
        out.status.success(),
        "a bad file in train/ is not read: {}",
        stderr(&out)
    );
    fs::write(tree.join("val/b/bad.png"), "not a png").unwrap();
    let line = one_line_error(&eval(&[]), "eval bad val");
    assert!(
        line.contains("val/b/bad.png") && line.contains("--skip-bad-images"),
        "{line}"
    );
    let out = eval(&["--skip-bad-images", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let result: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(result["examples"], 8);
}

#[test]
fn oversized_flags_are_one_line_before_any_allocation_and_leave_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let limit = Duration::from_secs(30);
    for (args, message) in [
        (
            vec!["summary", "--resize", "100000"],
            "choose a smaller --resize",
        ),
        (vec!["summary", "--resize", "2000"], "at most 544 pixels"),
        (
            vec!["train", "--resize", "100000", "--artifact-dir", s(&run_dir)],
            "choose a smaller --resize",
        ),
        (
            vec![
                "train",
                "--batch-size",
                "100000000",
                "--artifact-dir",
                s(&run_dir),
            ],
            "--batch-size is too large",
        ),
        (
            vec![
                "train",
                "--max-bad-fraction",
                "0.5",
                "--artifact-dir",
                s(&run_dir),
            ],
            "applies with --skip-bad-images",
        ),
    ] {
        let out = run_within(&args, limit).expect("refused at once");
        let line = one_line_error(&out, &args.join(" "));
        assert!(line.contains(message), "{args:?}: {line}");
        assert!(!run_dir.exists(), "{args:?} left {run_dir:?} behind");
    }
}

#[test]
fn a_file_given_as_the_folder_and_a_held_out_fraction_it_cannot_use_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree_of(dir.path(), &["train", "val"], &["a", "b"], 1);
    let run_dir = dir.path().join("run");
    let file = tree.join("train/a/0.png");
    let line = one_line_error(&train(&file, &run_dir, &[]).unwrap(), "a file");
    assert!(line.contains("0.png is a file, not a folder"), "{line}");
    let out = train(&tree, &run_dir, &["--val-split", "0.3"]).unwrap();
    let line = one_line_error(&out, "--val-split");
    assert!(
        line.contains("--val-split 0.3 applies to a folder without train/ and val/"),
        "{line}"
    );
    assert!(!run_dir.exists());
}

#[test]
fn a_truncated_record_is_named_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree_of(dir.path(), &[""], &["a", "b"], 4);
    let run_dir = dir.path().join("run");
    assert!(train(&tree, &run_dir, &[]).unwrap().status.success());
    let model = run_dir.join("model.mpk");
    let bytes = fs::read(&model).unwrap();
    fs::write(&model, &bytes[..bytes.len() / 3]).unwrap();
    for command in ["infer", "eval"] {
        let mut args = vec![command, "--artifact-dir", s(&run_dir)];
        if command == "infer" {
            args.push(s(&tree));
            args.push("--recursive");
        }
        let out = run(&args);
        let line = one_line_error(&out, command);
        assert!(
            line.contains("model.mpk") && line.contains("it ends early"),
            "{line}"
        );
        assert!(
            !line.contains("0.14") && !line.contains("record-backward-compat"),
            "{line}"
        );
    }
}

#[test]
fn infer_refuses_top_0_and_counts_what_it_could_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree_of(dir.path(), &[""], &["a", "b"], 5);
    let run_dir = dir.path().join("run");
    assert!(train(&tree, &run_dir, &[]).unwrap().status.success());
    fs::write(tree.join("a/broken.png"), "not a png").unwrap();
    let infer = |extra: &[&str]| {
        let mut args = vec![
            "infer",
            "--artifact-dir",
            s(&run_dir),
            s(&tree),
            "--recursive",
        ];
        args.extend(extra);
        run(&args)
    };
    let line = one_line_error(&infer(&["--top", "0"]), "--top 0");
    assert!(line.contains("--top 0"), "{line}");
    let out = infer(&["--batch-size", "4"]);
    let err = stderr(&out);
    assert!(
        err.contains("classified 10 of 11 images (1 could not be read)"),
        "{err}"
    );
    assert!(err.contains("1 of 11 inputs could not be read"), "{err}");
}

#[test]
fn a_torchvision_state_dict_is_recognised_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alexnet.safetensors");
    let keys = [
        "features.0.weight",
        "features.0.bias",
        "features.3.weight",
        "features.6.weight",
        "features.8.weight",
        "features.10.weight",
        "classifier.1.weight",
        "classifier.4.weight",
        "classifier.6.weight",
    ];
    let zeros = vec![0u8; 16];
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = keys
        .iter()
        .map(|k| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4], &zeros);
            (k.to_string(), view.unwrap())
        })
        .collect();
    safetensors::serialize_to_file(tensors, None, &file).unwrap();
    let run_dir = dir.path().join("run");
    let import = |extra: &[&str]| {
        let mut args = vec!["import", "--from", s(&file), "--artifact-dir", s(&run_dir)];
        args.extend(extra);
        run(&args)
    };
    // Its keys say torchvision's network: its shapes are then checked as that network's.
    let line = one_line_error(&import(&[]), "import torchvision");
    assert!(
        line.contains("'features.0.weight' (conv1.weight)") && line.contains("torchvision's"),
        "{line}"
    );
    // Given as d2l's, it is named for what it is, not taken for a nested d2l network.
    let line = one_line_error(&import(&["--arch", "d2l"]), "import torchvision as d2l");
    assert!(
        line.contains("is torchvision's alexnet()") && line.contains("--arch imagenet"),
        "{line}"
    );
    assert!(!line.contains("--key"), "{line}");
    assert!(!run_dir.exists(), "nothing written");
}

/// Files vanishing under a run with --skip-bad-images: each is said on the console with a
/// running count, the report counts what was read, and past --max-bad-fraction the run stops
/// with the checkpoint intact.
#[test]
fn images_vanishing_while_training_are_said_counted_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree_of(dir.path(), &["train", "val"], &["a", "b"], 20);
    let run_dir = dir.path().join("run");
    let out = train(&tree, &run_dir, &["--skip-bad-images"]).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for i in 0..4 {
        fs::remove_file(tree.join(format!("train/a/{i}.png"))).unwrap();
    }
    let resume = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--resume",
            "--epochs",
            "2",
            "--artifact-dir",
            s(&run_dir),
        ];
        args.extend(extra);
        run_within(&args, Duration::from_secs(120)).unwrap()
    };
    // 4 of 40 is over the default 1%: the run stops, epoch 1 kept.
    let out = resume(&[]);
    let line = one_line_error(&out, "too many vanished");
    assert!(
        line.contains("of the 40 training images of epoch 2 could not be read"),
        "{line}"
    );
    assert!(
        line.contains("the checkpoint of epoch 1 is intact"),
        "{line}"
    );
    assert!(line.contains("--max-bad-fraction"), "{line}");
    // Allowed up to 20%: said as it happens, and counted in the report.
    let out = resume(&["--max-bad-fraction", "0.2"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning: left out"), "{err}");
    assert!(
        err.contains("of the 40 training images of epoch 2 so far"),
        "{err}"
    );
    let report = fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(
        report.contains("read 36 training and 40 validation images in every epoch"),
        "{report}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        json["images"]["left_out_while_training"],
        serde_json::json!([4, 0])
    );
}

/// What the generator put in a tree, and what a correct scan finds.
struct Hostile {
    tree: PathBuf,
    /// The images of each class a scan must find (none of another class).
    images: BTreeMap<String, usize>,
    /// Whether the tree holds a file that is not a readable image (a scan refuses it unless
    /// told to skip).
    has_bad: bool,
    /// Files to delete while training runs.
    vanishing: Vec<PathBuf>,
}

/// Builds a random hostile tree from `seed` under `dir`.
fn hostile_tree(dir: &Path, seed: u64) -> Hostile {
    let mut rng = StdRng::seed_from_u64(seed);
    let tree = dir.join("tree");
    let outside = dir.join("outside");
    image(&outside.join("far.png"), 3);
    let classes = ["Bag", "Coat", "Dress"];
    let mut linked_outside = false;
    let mut hostile = Hostile {
        tree: tree.clone(),
        images: BTreeMap::new(),
        has_bad: false,
        vanishing: Vec::new(),
    };
    for (label, class) in classes.iter().enumerate() {
        let folder = tree.join(class);
        let count = rng.random_range(3..7);
        for i in 0..count {
            image(&folder.join(format!("{i}.png")), label);
        }
        *hostile.images.entry(class.to_string()).or_default() += count;
        for _ in 0..rng.random_range(1..5) {
            let n: u32 = rng.random();
            let at = folder.join(format!("odd{n}.png"));
            match rng.random_range(0..10) {
                0 => mkfifo(&at),
                1 => {
                    let socket = std::os::unix::net::UnixListener::bind(&at).unwrap();
                    std::mem::forget(socket);
                }
                2 => symlink("..", folder.join(format!("up{n}"))).unwrap(),
                3 => {
                    let other = classes[(label + 1) % classes.len()];
                    symlink(format!("../{other}"), folder.join(format!("in{n}"))).unwrap();
                }
                4 => symlink("nowhere.png", &at).unwrap(),
                5 => {
                    // A folder outside the tree, linked in: its image is this class's, the
                    // first time; a second link to it is passed over.
                    symlink(&outside, folder.join(format!("out{n}"))).unwrap();
                    if !linked_outside {
                        *hostile.images.get_mut(*class).unwrap() += 1;
                        linked_outside = true;
                    }
                }
                6 => {
                    // High bytes only: never NUL or '/', which no file name can hold.
                    let high = n.to_le_bytes().map(|b| b | 0x80);
                    let name = [b"x\xff".as_slice(), &high, b".png"].concat();
                    image(&folder.join(OsStr::from_bytes(&name)), label);
                    *hostile.images.get_mut(*class).unwrap() += 1;
                }
                7 => {
                    fs::write(&at, png_stating(100_000)).unwrap();
                    hostile.has_bad = true;
                }
                8 => {
                    fs::write(&at, b"").unwrap();
                    hostile.has_bad = true;
                }
                _ => {
                    image(&at, label);
                    *hostile.images.get_mut(*class).unwrap() += 1;
                    hostile.vanishing.push(at);
                }
            }
        }
    }
    hostile
}

/// Runs train, eval and infer on one hostile tree; panics with the seed on any outcome that is
/// not a result or one line in bounded time.
fn survive(seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let hostile = hostile_tree(dir.path(), seed);
    let run_dir = dir.path().join("run");
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let skip = rng.random_bool(0.7);
    let mut extra = vec!["--val-split", "0.3"];
    if skip {
        extra.extend(["--skip-bad-images", "--max-bad-fraction", "1"]);
    }
    let vanishing = hostile.vanishing.clone();
    let deleter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        for file in vanishing {
            let _ = fs::remove_file(file);
        }
    });
    let out = train(&hostile.tree, &run_dir, &extra)
        .unwrap_or_else(|| panic!("seed {seed}: train did not answer within its time limit"));
    deleter.join().unwrap();
    assert!(
        !run_dir.join("train.lock").exists(),
        "seed {seed}: lock left behind"
    );
    if !out.status.success() {
        let line = one_line_error(&out, &format!("seed {seed}: train"));
        // A refusal is only right for a tree with a bad file and no skipping, or for files
        // that vanished mid-run without skipping.
        let vanished = !hostile.vanishing.is_empty();
        assert!(
            !skip || vanished,
            "seed {seed}: refused although skipping: {line}"
        );
        assert!(
            hostile.has_bad || vanished,
            "seed {seed}: refused a good tree: {line}"
        );
        return;
    }
    let found = recorded(&run_dir);
    for (class, paths) in &found {
        assert!(
            paths.iter().all(|p| p.starts_with(class)),
            "seed {seed}: {class} holds another class's images: {paths:?}"
        );
        // Files that vanished before the scan are not listed.
        let vanished = hostile
            .vanishing
            .iter()
            .filter(|f| f.parent().unwrap().ends_with(class));
        let least = hostile.images[class] - vanished.count();
        assert!(
            (least..=hostile.images[class]).contains(&paths.len()),
            "seed {seed}: {class}: {} images, {paths:?}",
            hostile.images[class]
        );
    }
    let limit = Duration::from_secs(60);
    let mut eval = vec![
        "eval",
        "--artifact-dir",
        s(&run_dir),
        "--images",
        s(&hostile.tree),
    ];
    if skip {
        eval.push("--skip-bad-images");
    }
    let infer = [
        "infer",
        "--artifact-dir",
        s(&run_dir),
        s(&hostile.tree),
        "--recursive",
    ];
    for args in [&eval[..], &infer[..]] {
        let out = run_within(args, limit)
            .unwrap_or_else(|| panic!("seed {seed}: {} did not answer in time", args[0]));
        let what = format!("seed {seed}: {}", args[0]);
        match (out.status.success(), args[0]) {
            (true, _) => {}
            // infer names each input it cannot read on a line of its own, then counts them.
            (false, "infer") => inputs_named(&out, &hostile.tree, &what),
            (false, _) => drop(one_line_error(&out, &what)),
        }
        assert!(
            !stderr(&out).contains("panicked"),
            "{what}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn random_hostile_trees_always_get_an_answer() {
    // Fixed seeds, plus fresh ones each run; a failure names its seed, and HOSTILE_SEEDS=1,2,…
    // replays it.
    let seeds: Vec<u64> = match std::env::var("HOSTILE_SEEDS") {
        Ok(list) => list.split(',').map(|s| s.trim().parse().unwrap()).collect(),
        Err(_) => {
            let fresh = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64;
            vec![1, 2, 3, fresh, fresh.wrapping_mul(6364136223846793005)]
        }
    };
    for seed in seeds {
        eprintln!("hostile tree, seed {seed}");
        survive(seed);
    }
}
