//! `alexnet summary` against the layer table printed by the d2l chapter at 224 px.

mod common;

use common::{run, stderr, stdout};

/// d2l's table for `X = torch.randn(1, 1, 224, 224)`.
const D2L_TABLE_224: &str = "\
Conv2d output shape:\t [1, 96, 54, 54]
ReLU output shape:\t [1, 96, 54, 54]
MaxPool2d output shape:\t [1, 96, 26, 26]
Conv2d output shape:\t [1, 256, 26, 26]
ReLU output shape:\t [1, 256, 26, 26]
MaxPool2d output shape:\t [1, 256, 12, 12]
Conv2d output shape:\t [1, 384, 12, 12]
ReLU output shape:\t [1, 384, 12, 12]
Conv2d output shape:\t [1, 384, 12, 12]
ReLU output shape:\t [1, 384, 12, 12]
Conv2d output shape:\t [1, 256, 12, 12]
ReLU output shape:\t [1, 256, 12, 12]
MaxPool2d output shape:\t [1, 256, 5, 5]
Flatten output shape:\t [1, 6400]
Linear output shape:\t [1, 4096]
ReLU output shape:\t [1, 4096]
Dropout output shape:\t [1, 4096]
Linear output shape:\t [1, 4096]
ReLU output shape:\t [1, 4096]
Dropout output shape:\t [1, 4096]
Linear output shape:\t [1, 10]
";

#[test]
fn table_at_224_is_the_seeds() {
    let out = run(&["summary"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let (table, count) = text.split_at(text.find("Total parameters").expect("a count line"));
    assert_eq!(table, D2L_TABLE_224);
    assert_eq!(count.trim(), "Total parameters: 46,764,746");
}

#[test]
fn other_sizes_change_the_flatten_width() {
    for (side, flatten, pooled) in [
        (65, 256, "[1, 256, 1, 1]"),
        (96, 256, "[1, 256, 1, 1]"),
        (128, 1024, "[1, 256, 2, 2]"),
        (160, 2304, "[1, 256, 3, 3]"),
    ] {
        let out = run(&["summary", "--resize", &side.to_string()]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert_eq!(text.lines().count(), 22, "{text}");
        assert!(
            text.contains(&format!("Flatten output shape:\t [1, {flatten}]")),
            "{text}"
        );
        assert!(
            text.contains(&format!("MaxPool2d output shape:\t {pooled}\nFlatten")),
            "{text}"
        );
    }
}

#[test]
fn too_small_sizes_are_a_clear_error() {
    for side in ["64", "28", "0"] {
        let out = run(&["summary", "--resize", side]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains(&format!("image size {side} is too small")) && err.contains("at least 65"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// torchvision's `alexnet()` at 224 px: `features`, `avgpool`, the flatten of its `forward`,
/// `classifier`, and the parameter count its documentation gives.
const TORCHVISION_TABLE_224: &str = "\
Conv2d output shape:\t [1, 64, 55, 55]
ReLU output shape:\t [1, 64, 55, 55]
MaxPool2d output shape:\t [1, 64, 27, 27]
Conv2d output shape:\t [1, 192, 27, 27]
ReLU output shape:\t [1, 192, 27, 27]
MaxPool2d output shape:\t [1, 192, 13, 13]
Conv2d output shape:\t [1, 384, 13, 13]
ReLU output shape:\t [1, 384, 13, 13]
Conv2d output shape:\t [1, 256, 13, 13]
ReLU output shape:\t [1, 256, 13, 13]
Conv2d output shape:\t [1, 256, 13, 13]
ReLU output shape:\t [1, 256, 13, 13]
MaxPool2d output shape:\t [1, 256, 6, 6]
AdaptiveAvgPool2d output shape:\t [1, 256, 6, 6]
Flatten output shape:\t [1, 9216]
Dropout output shape:\t [1, 9216]
Linear output shape:\t [1, 4096]
ReLU output shape:\t [1, 4096]
Dropout output shape:\t [1, 4096]
Linear output shape:\t [1, 4096]
ReLU output shape:\t [1, 4096]
Linear output shape:\t [1, 1000]
";

#[test]
fn the_imagenet_table_is_torchvisions() {
    let out = run(&["summary", "--arch", "imagenet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let (table, count) = text.split_at(text.find("Total parameters").expect("a count line"));
    assert_eq!(table, TORCHVISION_TABLE_224);
    assert_eq!(count.trim(), "Total parameters: 61,100,840");
    let out = run(&["summary", "--arch", "vgg"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("[possible values: d2l, imagenet]"),
        "{}",
        stderr(&out)
    );
}
