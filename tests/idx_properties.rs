//! Property tests of the IDX reader: arbitrary bytes never panic, valid files round-trip, and
//! any truncation or corruption of a valid file is an error rather than a wrong result.

use std::path::Path;

use alexnet::data::idx::{encode_images, encode_labels, parse_images, parse_labels};
use alexnet::data::{NUM_CLASSES, PIXELS};
use proptest::prelude::*;

fn path() -> &'static Path {
    Path::new("fuzz-idx-ubyte")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_images(path(), &bytes);
        let _ = parse_labels(path(), &bytes);
    }

    #[test]
    fn arbitrary_headers_never_panic(magic in any::<u32>(), dims in proptest::collection::vec(any::<u32>(), 0..4), tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = magic.to_be_bytes().to_vec();
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend(tail);
        let _ = parse_images(path(), &bytes);
        let _ = parse_labels(path(), &bytes);
    }

    #[test]
    fn valid_files_round_trip(count in 0usize..4, seed in any::<u8>(), labels in proptest::collection::vec(0u8..NUM_CLASSES as u8, 0..50)) {
        let pixels: Vec<u8> = (0..count * PIXELS).map(|i| (i as u8).wrapping_mul(seed)).collect();
        prop_assert_eq!(parse_images(path(), &encode_images(&pixels)).unwrap(), pixels);
        prop_assert_eq!(parse_labels(path(), &encode_labels(&labels)).unwrap(), labels);
    }

    #[test]
    fn truncated_or_extended_files_are_rejected(labels in proptest::collection::vec(0u8..10, 1..50), cut in 1usize..8, extra in 1usize..8) {
        let bytes = encode_labels(&labels);
        let cut = cut.min(bytes.len());
        prop_assert!(parse_labels(path(), &bytes[..bytes.len() - cut]).is_err());
        let mut longer = bytes.clone();
        longer.extend(std::iter::repeat_n(0u8, extra));
        prop_assert!(parse_labels(path(), &longer).is_err());
    }

    #[test]
    fn out_of_range_labels_are_rejected(labels in proptest::collection::vec(0u8..10, 0..20), bad in 10u8..=255, at in any::<prop::sample::Index>()) {
        let mut labels = labels;
        let index = at.index(labels.len() + 1);
        labels.insert(index, bad);
        prop_assert!(parse_labels(path(), &encode_labels(&labels)).is_err());
    }
}
