//! Weights in the form of PyTorch's networks: d2l's chapter `nn.Sequential` and torchvision's
//! `alexnet()`. [`import_net`] reads a state dict of either (written by `torch.save`, or as
//! safetensors); [`export_net`] writes a network as the safetensors state dict that
//! `net.load_state_dict(…)` loads strictly.
//!
//! burn-store reads both formats, writes safetensors and transposes Linear weights between
//! PyTorch's `[out, in]` and Burn's `[in, out]`. This module owns the two networks' key names,
//! the checks of what a file holds, and their one-line messages (burn-store's are multi-line
//! reports).

mod format;

use std::collections::BTreeMap;
use std::path::Path;

use alexnet_model::{AlexNet, AlexNetConfig, Arch};
use anyhow::{Result, anyhow, bail};
use burn::tensor::DType;
use burn::tensor::backend::Backend;
use burn_store::{
    ApplyResult, BurnToPyTorchAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter,
    PytorchStore, SafetensorsStore,
};

pub use format::{
    ARCH_KEY, CHANNELS_KEY, CLASSES_KEY, ExportedInput, Format, IMAGE_SIZE_KEY, exported_input,
};

use crate::run;

/// d2l's `nn.Sequential` index of each layer with parameters, by the [`AlexNet`] field that
/// holds it: PyTorch's `0.weight` is our `conv1.weight`, `14.weight` our `fc1.weight`.
const D2L_LAYERS: [(&str, &str); 8] = [
    ("conv1", "0"),
    ("conv2", "3"),
    ("conv3", "6"),
    ("conv4", "8"),
    ("conv5", "10"),
    ("fc1", "14"),
    ("fc2", "17"),
    ("fc3", "20"),
];

/// torchvision's name of each layer with parameters: `features.0.weight` is our
/// `conv1.weight`, `classifier.1.weight` our `fc1.weight`.
const TORCHVISION_LAYERS: [(&str, &str); 8] = [
    ("conv1", "features.0"),
    ("conv2", "features.3"),
    ("conv3", "features.6"),
    ("conv4", "features.8"),
    ("conv5", "features.10"),
    ("fc1", "classifier.1"),
    ("fc2", "classifier.4"),
    ("fc3", "classifier.6"),
];

/// PyTorch's layer names of `arch`'s network, by our field names.
fn layer_names(arch: Arch) -> &'static [(&'static str, &'static str); 8] {
    match arch {
        Arch::D2l => &D2L_LAYERS,
        Arch::Imagenet => &TORCHVISION_LAYERS,
    }
}

/// The PyTorch network of `arch`, for messages.
fn network(arch: Arch) -> &'static str {
    match arch {
        Arch::D2l => {
            "d2l's AlexNet nn.Sequential (keys 0.weight, 0.bias, 3.*, 6.*, 8.*, 10.*, \
                      14.*, 17.*, 20.*)"
        }
        Arch::Imagenet => {
            "torchvision's alexnet() (keys features.0.*, features.3.*, \
                           features.6.*, features.8.*, features.10.*, classifier.1.*, \
                           classifier.4.*, classifier.6.*)"
        }
    }
}

/// The short name of `arch`'s PyTorch network, for messages.
fn short_name(arch: Arch) -> &'static str {
    match arch {
        Arch::D2l => "d2l's AlexNet",
        Arch::Imagenet => "torchvision's AlexNet",
    }
}

/// One tensor of a state dict, as PyTorch names it and lays it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateTensor {
    /// The key in PyTorch's state dict (`0.weight` in d2l's, `features.0.weight` in
    /// torchvision's).
    pub key: String,
    /// The parameter in this crate's network (`conv1.weight`).
    pub param: String,
    /// The shape in PyTorch's layout (Linear weights `[out, in]`).
    pub shape: Vec<usize>,
}

/// PyTorch's key for one of our parameter names (d2l's `fc1.weight` -> `14.weight`).
fn pytorch_key(arch: Arch, param: &str) -> Option<String> {
    let (layer, rest) = param.split_once('.')?;
    let (_, name) = layer_names(arch).iter().find(|(l, _)| *l == layer)?;
    Some(format!("{name}.{rest}"))
}

/// The state dict PyTorch's network has for `net`'s architecture and configuration, in the
/// network's order.
pub fn state_dict<B: Backend>(net: &AlexNet<B>) -> Vec<StateTensor> {
    net.parameter_shapes()
        .into_iter()
        .map(|(param, mut shape)| {
            // Burn's Linear holds [in, out]; PyTorch's nn.Linear holds [out, in].
            if shape.len() == 2 {
                shape.reverse();
            }
            let key =
                pytorch_key(net.arch(), &param).expect("every parameter belongs to a mapped layer");
            StateTensor { key, param, shape }
        })
        .collect()
}

/// What a file holds under one key.
#[derive(Debug, Clone)]
struct Found {
    shape: Vec<usize>,
    dtype: DType,
}

/// The store of one file, of either format, with PyTorch's keys renamed to ours.
enum Store {
    Pytorch(PytorchStore),
    Safetensors(SafetensorsStore),
}

impl Store {
    /// Opens `file` with its keys as they are, to inspect them.
    fn inspect(file: &Path, format: Format) -> Self {
        Self::open(file, format, Vec::new())
    }

    /// Opens `file` with the keys under `prefix.` (all keys when `None`) renamed from
    /// `arch`'s PyTorch names to our parameter names.
    fn for_loading(file: &Path, format: Format, prefix: Option<&str>, arch: Arch) -> Self {
        let strip = prefix.map(|p| (format!("^{}\\.", regex::escape(p)), String::new()));
        let layers = layer_names(arch)
            .iter()
            .map(|(layer, name)| (format!("^{}\\.", regex::escape(name)), format!("{layer}.")));
        Self::open(file, format, strip.into_iter().chain(layers).collect())
    }

    /// Opens `file`, applying the regex `renames` in order.
    fn open(file: &Path, format: Format, renames: Vec<(String, String)>) -> Self {
        match format {
            // Off: it would renumber d2l's 0, 3, 6, … (and torchvision's) to 0, 1, 2, ….
            Format::Pytorch => {
                let store = PytorchStore::from_file(file).map_indices_contiguous(false);
                Self::Pytorch(
                    renames
                        .into_iter()
                        .fold(store, |s, (from, to)| s.with_key_remapping(from, to)),
                )
            }
            Format::Safetensors => {
                let store = SafetensorsStore::from_file(file)
                    .with_from_adapter(PyTorchToBurnAdapter)
                    .map_indices_contiguous(false);
                Self::Safetensors(
                    renames
                        .into_iter()
                        .fold(store, |s, (from, to)| s.with_key_remapping(from, to)),
                )
            }
        }
    }

    /// Every tensor of the file by key, or why the file cannot be read as a state dict.
    fn tensors(&mut self) -> Result<BTreeMap<String, Found>> {
        let snapshots = match self {
            Self::Pytorch(s) => s.get_all_snapshots()?,
            Self::Safetensors(s) => s.get_all_snapshots()?,
        };
        Ok(snapshots
            .iter()
            .map(|(key, s)| {
                let found = Found {
                    shape: s.shape.to_vec(),
                    dtype: s.dtype,
                };
                (key.clone(), found)
            })
            .collect())
    }

    fn load_into<B: Backend>(&mut self, net: &mut AlexNet<B>) -> Result<ApplyResult> {
        Ok(match self {
            Self::Pytorch(s) => net.load_from(s)?,
            Self::Safetensors(s) => net.load_from(s)?,
        })
    }
}

/// The first line of a (possibly multi-line) error, without burn-store's generic guesses.
fn first_line(message: &str) -> &str {
    let line = message.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.split(". This may indicate").next().unwrap_or(line)
}

/// Every tensor of `file` by key, and the file's format, or why it is not a state dict.
fn read_keys(file: &Path) -> Result<(BTreeMap<String, Found>, Format)> {
    let format = Format::sniff(file)?;
    let found = Store::inspect(file, format).tensors().map_err(|reason| {
        anyhow!(
            "{} is a {format} file but not a state dict ({}); save the weights with \
             torch.save(net.state_dict(), …)",
            file.display(),
            first_line(&reason.to_string())
        )
    })?;
    Ok((found, format))
}

/// Which network's state dict `found` holds (under `prefix.`, when given), told by its keys.
fn layout(found: &BTreeMap<String, Found>, prefix: Option<&str>) -> Option<Arch> {
    let under = strip_prefix(found, prefix);
    Arch::ALL.into_iter().find(|&arch| {
        layer_names(arch)
            .iter()
            .all(|(_, name)| under.contains_key(&format!("{name}.weight")))
    })
}

/// What `file` holds, for `alexnet import` to build the network it needs: the architecture its
/// keys say (none when they are neither network's: `import_net` says why), the input channels
/// of its first convolution and the classes of its last layer.
pub fn file_network(file: &Path, key: Option<&str>) -> Result<Option<FileNetwork>> {
    let (found, _) = read_keys(file)?;
    let Some(arch) = layout(&found, key) else {
        return Ok(None);
    };
    let under = strip_prefix(&found, key);
    let shape = |layer: &str| {
        let (_, name) = layer_names(arch).iter().find(|(l, _)| *l == layer)?;
        Some(under.get(&format!("{name}.weight"))?.shape.clone())
    };
    let in_channels = shape("conv1").and_then(|s| s.get(1).copied());
    let num_classes = shape("fc3").and_then(|s| s.first().copied());
    Ok(Some(FileNetwork {
        arch,
        in_channels,
        num_classes,
    }))
}

/// The network of `arch` that a weights file holds at input side `image_size`: its channels
/// and classes as the file's export metadata says, else as its first and last layers' shapes
/// (when its keys are `arch`'s), else `arch`'s own ([`AlexNetConfig::for_arch`]).
pub fn file_model(
    arch: Arch,
    image_size: usize,
    exported: &ExportedInput,
    held: Option<FileNetwork>,
) -> AlexNetConfig {
    let defaults = AlexNetConfig::for_arch(arch);
    let held = held.filter(|h| h.arch == arch);
    let classes = exported.classes.as_ref().map(Vec::len);
    let in_channels = exported.in_channels.or(held.and_then(|h| h.in_channels));
    let num_classes = classes.or(held.and_then(|h| h.num_classes));
    defaults
        .clone()
        .with_image_size(image_size)
        .with_in_channels(in_channels.unwrap_or(defaults.in_channels))
        .with_num_classes(num_classes.unwrap_or(defaults.num_classes))
}

/// The network a state dict holds, by [`file_network`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileNetwork {
    /// d2l's or torchvision's.
    pub arch: Arch,
    /// The first convolution's input channels.
    pub in_channels: Option<usize>,
    /// The last layer's outputs.
    pub num_classes: Option<usize>,
}

/// Reads the state dict in `file` into a network built from `config` (of its architecture),
/// or says in one line what the file holds instead and how to fix it. `key` names the entry of
/// a full checkpoint dict that holds the state dict (`model_state_dict`). Returns the network
/// and the file's format.
pub fn import_net<B: Backend>(
    file: &Path,
    config: &AlexNetConfig,
    key: Option<&str>,
    device: &B::Device,
) -> Result<(AlexNet<B>, Format)> {
    let (found, format) = read_keys(file)?;
    let mut net = config.try_init::<B>(device)?;
    let expected = state_dict(&net);
    let prefix = weights_prefix(file, &found, key, (&expected, config.arch))?;
    let under_prefix = strip_prefix(&found, prefix.as_deref());
    check_tensors(file, &under_prefix, &expected, config)?;
    let result = Store::for_loading(file, format, prefix.as_deref(), config.arch)
        .load_into(&mut net)
        .map_err(|e| {
            anyhow!(
                "cannot load {}: {}",
                file.display(),
                first_line(&e.to_string())
            )
        })?;
    // The checks above cover what burn-store reports; this guards against them drifting apart.
    if let Some(err) = result.errors.first() {
        bail!("cannot load {}: {err}", file.display());
    }
    if let Some((param, _)) = result.missing.first() {
        bail!("cannot load {}: {param} was not filled", file.display());
    }
    Ok((net, format))
}

/// Keys under `prefix.`, without it; every key when there is no prefix.
fn strip_prefix(found: &BTreeMap<String, Found>, prefix: Option<&str>) -> BTreeMap<String, Found> {
    let Some(prefix) = prefix else {
        return found.clone();
    };
    found
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.strip_prefix(prefix)?.strip_prefix('.')?.to_string(),
                v.clone(),
            ))
        })
        .collect()
}

/// The entry of a checkpoint dict that holds the weights: `key` when given (checked), none for
/// a plain state dict; a full checkpoint without `--key`, or the other network's state dict,
/// is an error naming the key or the network.
fn weights_prefix(
    file: &Path,
    found: &BTreeMap<String, Found>,
    key: Option<&str>,
    (expected, arch): (&[StateTensor], Arch),
) -> Result<Option<String>> {
    let file = file.display();
    if found.is_empty() {
        bail!(
            "{file} holds no tensors, so it is not a state dict; save the weights with \
             torch.save(net.state_dict(), …)"
        );
    }
    if let Some(key) = key {
        if strip_prefix(found, Some(key)).is_empty() {
            bail!(
                "{file} has nothing under the key '{key}' (its top-level keys: {}); pass \
                 --key with one of them",
                top_level_keys(found)
            );
        }
        other_network(&file, found, Some(key), arch)?;
        return Ok(Some(key.to_string()));
    }
    other_network(&file, found, None, arch)?;
    let first = &expected[0].key;
    if found.contains_key(first) {
        return Ok(None);
    }
    let nested = found
        .keys()
        .find_map(|k| k.strip_suffix(first.as_str())?.strip_suffix('.'));
    if let Some(prefix) = nested {
        bail!(
            "{file} is a full checkpoint, not a state dict: the network's weights are under the \
             key '{prefix}'; pass --key {prefix} (or save net.state_dict() alone)"
        );
    }
    Ok(None)
}

/// Refuses the state dict of the other network than `arch`'s (torchvision's `features.0.weight`
/// would otherwise pass for a d2l network nested under `features`).
fn other_network(
    file: &impl std::fmt::Display,
    found: &BTreeMap<String, Found>,
    prefix: Option<&str>,
    arch: Arch,
) -> Result<()> {
    match layout(found, prefix) {
        Some(held) if held != arch => bail!(
            "{file} is {}, not {}; pass --arch {held} to use it",
            network(held),
            short_name(arch)
        ),
        _ => Ok(()),
    }
}

/// The distinct first components of the keys, for messages.
fn top_level_keys(found: &BTreeMap<String, Found>) -> String {
    let mut tops: Vec<&str> = found
        .keys()
        .map(|k| k.split('.').next().unwrap_or(k))
        .collect();
    tops.dedup();
    tops.join(", ")
}

/// Checks that `found` is exactly the state dict of `config`'s network: every key, no other
/// key, float32, PyTorch's shapes.
fn check_tensors(
    file: &Path,
    found: &BTreeMap<String, Found>,
    expected: &[StateTensor],
    config: &AlexNetConfig,
) -> Result<()> {
    let file = file.display();
    let name = short_name(config.arch);
    for want in expected {
        let (key, param) = (&want.key, &want.param);
        let Some(have) = found.get(key) else {
            let keys: Vec<&str> = found.keys().take(4).map(String::as_str).collect();
            bail!(
                "{file} has no tensor '{key}' ({param}), so it is not a state dict of {} (its \
                 first keys: {})",
                network(config.arch),
                keys.join(", ")
            );
        };
        if have.dtype != DType::F32 {
            bail!(
                "tensor '{key}' in {file} is {:?}; import reads float32 weights: save them \
                 after net.float()",
                have.dtype
            );
        }
        if have.shape == want.shape {
            continue;
        }
        let mut reversed = want.shape.clone();
        reversed.reverse();
        if want.shape.len() == 2 && have.shape == reversed {
            bail!(
                "tensor '{key}' in {file} is {:?}, the transpose of nn.Linear's [out_features, \
                 in_features] = {:?}; save the weights in PyTorch's own layout",
                have.shape,
                want.shape
            );
        }
        bail!(
            "tensor '{key}' ({param}) in {file} is {:?}, but {name} at --resize {} needs \
             {:?}{}",
            have.shape,
            config.image_size,
            want.shape,
            resize_hint(param, &have.shape, config)
        );
    }
    if let Some(extra) = found
        .keys()
        .find(|k| !expected.iter().any(|e| &e.key == *k))
    {
        bail!(
            "{file} has a tensor '{extra}' that {name} does not have, so it holds another \
             network (the keys of {})",
            network(config.arch)
        );
    }
    Ok(())
}

/// For a first Linear layer sized for another input side: the `--resize` values that fit it.
fn resize_hint(param: &str, shape: &[usize], config: &AlexNetConfig) -> String {
    let [_, width] = shape else {
        return String::new();
    };
    if param != "fc1.weight" {
        return String::new();
    }
    let fits: Vec<usize> = (config.arch.min_image_size()..=1024)
        .filter(|&side| {
            let other = config.clone().with_image_size(side);
            other.flatten_width() == Ok(*width)
        })
        .collect();
    match (fits.first(), fits.last()) {
        (Some(a), Some(b)) if a == b => format!("; the file fits --resize {a}"),
        (Some(a), Some(b)) => format!("; the file fits --resize {a} to {b}"),
        _ => String::new(),
    }
}

/// Writes `net` to `out` as its PyTorch network's safetensors state dict (d2l's or
/// torchvision's key names, PyTorch's layouts), with its architecture, input side, channels and
/// `classes` in the metadata; returns the bytes written. The file appears whole or not at all.
pub fn export_net<B: Backend>(
    net: &AlexNet<B>,
    (config, classes): (&AlexNetConfig, &[String]),
    out: &Path,
) -> Result<usize> {
    // PyTorch's own `save_file` writes {"format": "pt"}; tools such as transformers check it.
    let classes = serde_json::to_string(classes).expect("names serialise");
    let store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        .clear_metadata()
        .metadata("format", "pt")
        .metadata(format::ARCH_KEY, config.arch.to_string())
        .metadata(format::IMAGE_SIZE_KEY, config.image_size.to_string())
        .metadata(format::CHANNELS_KEY, config.in_channels.to_string())
        .metadata(format::CLASSES_KEY, classes);
    let mut store = layer_names(config.arch)
        .iter()
        .fold(store, |s, (layer, name)| {
            s.with_key_remapping(format!("^{layer}\\."), format!("{name}."))
        });
    net.save_into(&mut store)
        .map_err(|e| anyhow!("cannot export the network: {}", first_line(&e.to_string())))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| anyhow!("cannot export the network: {}", first_line(&e.to_string())))?;
    run::write_atomically(out, &bytes)?;
    Ok(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_d2ls_sequential_indices_and_torchvisions_names() {
        let d2l = |param| pytorch_key(Arch::D2l, param);
        assert_eq!(d2l("conv1.weight").as_deref(), Some("0.weight"));
        assert_eq!(d2l("conv5.bias").as_deref(), Some("10.bias"));
        assert_eq!(d2l("fc1.weight").as_deref(), Some("14.weight"));
        assert_eq!(d2l("fc3.bias").as_deref(), Some("20.bias"));
        assert_eq!(d2l("pool1.weight"), None);
        let torchvision = |param| pytorch_key(Arch::Imagenet, param);
        assert_eq!(
            torchvision("conv1.weight").as_deref(),
            Some("features.0.weight")
        );
        assert_eq!(
            torchvision("conv5.bias").as_deref(),
            Some("features.10.bias")
        );
        assert_eq!(
            torchvision("fc1.weight").as_deref(),
            Some("classifier.1.weight")
        );
        assert_eq!(
            torchvision("fc3.bias").as_deref(),
            Some("classifier.6.bias")
        );
    }

    #[cfg(feature = "flex")]
    #[test]
    fn the_state_dict_has_pytorchs_layouts() {
        let net: AlexNet<burn::backend::Flex> = AlexNetConfig::new().init(&Default::default());
        let dict = state_dict(&net);
        assert_eq!(dict.len(), 16);
        let shape = |key: &str| dict.iter().find(|t| t.key == key).unwrap().shape.clone();
        assert_eq!(shape("0.weight"), vec![96, 1, 11, 11]);
        assert_eq!(shape("14.weight"), vec![4096, 6400]);
        assert_eq!(shape("20.weight"), vec![10, 4096]);
        assert_eq!(shape("20.bias"), vec![10]);
        assert_eq!(
            (dict[10].param.as_str(), dict[10].key.as_str()),
            ("fc1.weight", "14.weight")
        );
    }

    /// The shapes of torchvision's `alexnet().state_dict()`.
    #[cfg(feature = "flex")]
    #[test]
    fn the_imagenet_state_dict_is_torchvisions() {
        let config = AlexNetConfig::new()
            .with_arch(Arch::Imagenet)
            .with_in_channels(3)
            .with_num_classes(1000);
        let net: AlexNet<burn::backend::Flex> = config.init(&Default::default());
        let dict = state_dict(&net);
        let shapes: Vec<(&str, Vec<usize>)> = dict
            .iter()
            .map(|t| (t.key.as_str(), t.shape.clone()))
            .collect();
        assert_eq!(
            shapes,
            [
                ("features.0.weight", vec![64, 3, 11, 11]),
                ("features.0.bias", vec![64]),
                ("features.3.weight", vec![192, 64, 5, 5]),
                ("features.3.bias", vec![192]),
                ("features.6.weight", vec![384, 192, 3, 3]),
                ("features.6.bias", vec![384]),
                ("features.8.weight", vec![256, 384, 3, 3]),
                ("features.8.bias", vec![256]),
                ("features.10.weight", vec![256, 256, 3, 3]),
                ("features.10.bias", vec![256]),
                ("classifier.1.weight", vec![4096, 9216]),
                ("classifier.1.bias", vec![4096]),
                ("classifier.4.weight", vec![4096, 4096]),
                ("classifier.4.bias", vec![4096]),
                ("classifier.6.weight", vec![1000, 4096]),
                ("classifier.6.bias", vec![1000]),
            ]
        );
    }

    #[test]
    fn resize_hints_name_the_sizes_that_fit() {
        let config = AlexNetConfig::new();
        assert_eq!(
            resize_hint("fc1.weight", &[4096, 6400], &config),
            "; the file fits --resize 193 to 224"
        );
        assert_eq!(resize_hint("fc2.weight", &[4096, 6400], &config), "");
        assert_eq!(resize_hint("fc1.weight", &[4096, 6401], &config), "");
    }
}
