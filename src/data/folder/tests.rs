use super::*;
use crate::data::walk::images_in;
use image::{GrayImage, Luma, Rgb, RgbImage};
use std::fs;

fn grey(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    GrayImage::from_pixel(6, 4, Luma([50])).save(path).unwrap();
}

fn options() -> ScanOptions {
    ScanOptions {
        val_fraction: 0.25,
        seed: 7,
        skip_bad: false,
        purpose: Purpose::Training,
    }
}

fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
}

#[test]
fn fifos_sockets_loops_and_links_into_the_tree_are_passed_over_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..3 {
        grey(&root.join(format!("Bag/{i}.png")));
        grey(&root.join(format!("Coat/{i}.png")));
    }
    // Opening this FIFO would block for ever; it is never opened.
    mkfifo(&root.join("Bag/x.png"));
    let _socket = std::os::unix::net::UnixListener::bind(root.join("Coat/s.png")).unwrap();
    // A link up to the folder itself and one into another class: following either would
    // read Coat's images again, labelled Bag.
    std::os::unix::fs::symlink("..", root.join("Bag/loop")).unwrap();
    std::os::unix::fs::symlink("../Coat", root.join("Bag/coats")).unwrap();
    std::os::unix::fs::symlink("../../..", root.join("Bag/above")).unwrap();
    std::os::unix::fs::symlink("nowhere.png", root.join("Coat/gone.png")).unwrap();
    std::os::unix::fs::symlink("self.png", root.join("Coat/self.png")).unwrap();
    // A link to one image file is an image of its class.
    std::os::unix::fs::symlink("../Coat/0.png", root.join("Bag/linked.png")).unwrap();
    let split = ImageFolder::scan(
        root,
        ScanOptions {
            val_fraction: 0.01,
            ..options()
        },
    )
    .unwrap();
    let labels: Vec<usize> = split
        .train
        .iter()
        .chain(&split.val)
        .map(|f| f.label)
        .collect();
    assert_eq!(
        labels.iter().filter(|&&l| l == 0).count(),
        4,
        "3 Bag images and the link"
    );
    assert_eq!(labels.iter().filter(|&&l| l == 1).count(), 3);
    assert_eq!(
        split.passed_over,
        PassedOver {
            special: 2,
            dangling: 2,
            repeated: 3
        }
    );
    assert_eq!(
        split.passed_over.describe(),
        "2 FIFOs, sockets or devices, 2 links that lead nowhere, 3 links back into the folder"
    );
    // Given Bag alone, Coat lies outside it: its link is followed, once.
    let (images, passed_over) = images_in(&root.join("Bag"), true).unwrap();
    assert_eq!(images.len(), 7, "{images:?}");
    assert_eq!(
        (passed_over.special, passed_over.repeated),
        (2, 2),
        "the FIFO, and the socket in Coat"
    );
}

#[test]
fn names_that_are_not_utf8_are_kept_exactly_through_images_json() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A Latin-1 name (not UTF-8), and a UTF-8 name that spells its escape.
    let latin1 = std::ffi::OsStr::from_bytes(b"a/caf\xe9.png");
    let spelled = Path::new(r"a/caf\xE9.png");
    grey(&root.join(latin1));
    grey(&root.join(spelled));
    grey(&root.join("b/1.png"));
    grey(&root.join("b/2.png"));
    let split = ImageFolder::scan(root, options()).unwrap();
    let json = serde_json::to_string(&split).unwrap();
    assert!(json.contains(r#""a/caf\\xE9.png""#), "{json}");
    assert!(json.contains(r#""a/caf\\\\xE9.png""#), "{json}");
    let back: ImageFolder = serde_json::from_str(&json).unwrap();
    assert_eq!(back, split);
    let files: Vec<&Path> = back
        .train
        .iter()
        .chain(&back.val)
        .map(|f| f.path.as_path())
        .collect();
    assert!(
        files.contains(&Path::new(latin1)) && files.contains(&spelled),
        "{files:?}"
    );
}

#[test]
fn evaluation_reads_only_val_of_a_train_val_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for class in ["cat", "dog"] {
        grey(&root.join(format!("train/{class}/a.png")));
        grey(&root.join(format!("val/{class}/b.png")));
    }
    fs::write(root.join("train/cat/bad.png"), "not a png").unwrap();
    mkfifo(&root.join("train/dog/pipe.png"));
    assert!(
        ImageFolder::scan(root, options()).is_err(),
        "training reads train/"
    );
    let eval = ScanOptions {
        purpose: Purpose::Evaluation,
        ..options()
    };
    let split = ImageFolder::scan(root, eval).unwrap();
    assert!(split.train.is_empty());
    assert_eq!(
        split.for_run(&["cat".into(), "dog".into()]).unwrap().len(),
        2
    );
    let file = root.join("train/cat/a.png");
    let err = ImageFolder::scan(&file, options()).unwrap_err().to_string();
    assert!(err.contains("a.png is a file, not a folder"), "{err}");
}

#[test]
fn classes_are_sorted_subfolders_and_nested_images_belong_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..4 {
        grey(&root.join(format!("zebra/{i}.png")));
        grey(&root.join(format!("ant/deep/er/{i}.png")));
    }
    fs::write(root.join("ant/readme.txt"), "notes").unwrap();
    grey(&root.join("ant/.hidden.png"));
    grey(&root.join(".cache/x.png"));
    // A linked folder is followed, and a link back up is not a loop.
    let elsewhere = tempfile::tempdir().unwrap();
    grey(&elsewhere.path().join("linked.png"));
    std::os::unix::fs::symlink(elsewhere.path(), root.join("zebra/more")).unwrap();
    std::os::unix::fs::symlink(root.join("zebra"), root.join("zebra/loop")).unwrap();
    let split = ImageFolder::scan(root, options()).unwrap();
    assert_eq!(split.classes, ["ant", "zebra"]);
    assert_eq!((split.train.len(), split.val.len()), (7, 2));
    assert!(
        split
            .train
            .iter()
            .chain(&split.val)
            .any(|f| f.path.ends_with("more/linked.png"))
    );
    assert_eq!(split.not_images, 1);
    assert!(split.all_grey);
    assert!(split.val.iter().any(|f| f.label == 0) && split.val.iter().any(|f| f.label == 1));
    let again = ImageFolder::scan(root, options()).unwrap();
    assert_eq!(split, again, "the same folder and seed give the same split");
    let other = ImageFolder::scan(
        root,
        ScanOptions {
            seed: 8,
            ..options()
        },
    )
    .unwrap();
    assert_eq!(other.val.len(), 2);
}

#[test]
fn train_and_val_folders_are_the_splits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for class in ["cat", "dog"] {
        grey(&root.join(format!("train/{class}/a.png")));
        grey(&root.join(format!("train/{class}/b.png")));
        let path = root.join(format!("val/{class}/c.png"));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        RgbImage::from_pixel(3, 3, Rgb([1, 2, 3]))
            .save(&path)
            .unwrap();
    }
    let split = ImageFolder::scan(root, options()).unwrap();
    assert_eq!(split.layout, Layout::TrainVal);
    assert_eq!((split.train.len(), split.val.len()), (4, 2));
    assert_eq!(split.val[1].path, Path::new("val/dog/c.png"));
    assert!(!split.all_grey);
    grey(&root.join("val/eel/d.png"));
    let err = ImageFolder::scan(root, options()).unwrap_err().to_string();
    assert!(
        err.contains("train has cat, dog, val has cat, dog, eel"),
        "{err}"
    );
}

#[test]
fn bad_folders_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let scan = || ImageFolder::scan(root, options()).unwrap_err().to_string();
    assert!(
        ImageFolder::scan(&root.join("nope"), options())
            .unwrap_err()
            .to_string()
            .contains("nope does not exist")
    );
    grey(&root.join("one/a.png"));
    assert!(scan().contains("1 class folder(s) (one); a classifier needs at least 2"));
    fs::create_dir_all(root.join("two")).unwrap();
    fs::write(root.join("two/list.txt"), "x").unwrap();
    assert!(
        scan().contains("two holds no images (1 other files)"),
        "{}",
        scan()
    );
    fs::write(root.join("two/fake.jpg"), "not a jpeg").unwrap();
    grey(&root.join("two/b.png"));
    let err = scan();
    assert!(
        err.contains("1 of the files") && err.contains("fake.jpg"),
        "{err}"
    );
    let skipping = ScanOptions {
        skip_bad: true,
        ..options()
    };
    let split = ImageFolder::scan(root, skipping).unwrap();
    assert_eq!(split.skipped.len(), 1);
    assert!(split.skipped[0].path.ends_with("two/fake.jpg"));
}

#[test]
fn held_out_counts_keep_a_training_image() {
    assert_eq!(held_out(10, 0.1), 1);
    assert_eq!(held_out(100, 0.25), 25);
    assert_eq!(
        held_out(3, 0.1),
        1,
        "at least one when the fraction is above 0"
    );
    assert_eq!(held_out(2, 0.9), 1, "at most all but one");
    assert_eq!(held_out(1, 0.5), 0);
    assert_eq!(held_out(10, 0.0), 0);
}
