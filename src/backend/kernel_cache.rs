//! The GPU kernel cache: cubecl's autotune results and compiled kernels, and the GPU driver's own
//! shader cache, under one directory the user chooses (`--kernel-cache`, `ALEXNET_KERNEL_CACHE`).
//!
//! cubecl keeps its autotune cache beside the nearest `Cargo.toml` above the working directory
//! (else `~/.cache/cubecl`), keyed by the runtime and device index rather than the GPU model, and
//! keeps no compiled kernels unless told to; a binary copied to a fresh GPU machine therefore
//! compiled and tuned every kernel again on every start. Here each GPU model and build gets a
//! directory of its own, `ROOT/<gpu model>/<build>/<autotune level>/`, so a kernel tuned for
//! another GPU, another Burn or another fusion setting is never loaded, and the directory can be
//! shipped with the binary.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::BackendError;

/// How hard cubecl's autotuner searches (cubecl's `[autotune] level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TuneLevel {
    /// The fewest candidates per operation.
    Minimal,
    /// cubecl's default.
    #[default]
    Balanced,
    /// More candidates.
    Extensive,
    /// Every candidate.
    Full,
}

impl TuneLevel {
    /// Every level, from the fewest candidates to the most.
    pub const ALL: [TuneLevel; 4] = [Self::Minimal, Self::Balanced, Self::Extensive, Self::Full];

    /// The name used by `--autotune-level`, `CUBECL_AUTOTUNE_LEVEL` and the cache directory.
    pub fn name(self) -> &'static str {
        match self {
            Self::Minimal => "minimal",
            Self::Balanced => "balanced",
            Self::Extensive => "extensive",
            Self::Full => "full",
        }
    }

    /// `--autotune-level`, else `CUBECL_AUTOTUNE_LEVEL` (as cubecl reads it), else balanced.
    pub fn resolve(flag: Option<TuneLevel>) -> Self {
        let from_env = || match std::env::var("CUBECL_AUTOTUNE_LEVEL").ok()?.as_str() {
            "minimal" | "0" => Some(Self::Minimal),
            "balanced" | "1" => Some(Self::Balanced),
            "extensive" | "2" => Some(Self::Extensive),
            "full" | "3" => Some(Self::Full),
            _ => None,
        };
        flag.or_else(from_env).unwrap_or_default()
    }
}

/// Everything besides the GPU model that changes which kernels exist and how they were tuned.
pub fn build_key() -> String {
    let fusion = match cfg!(feature = "fusion") {
        true => "fusion",
        false => "nofusion",
    };
    format!(
        "alexnet-{}-burn-0.21.0-cubecl-0.10.0-{fusion}",
        env!("CARGO_PKG_VERSION")
    )
}

/// The cache directory tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelCache {
    root: PathBuf,
}

/// The state of one device's cache directory.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStatus {
    /// The directory.
    pub dir: PathBuf,
    /// Autotune results stored there (one per operation and shape).
    pub tuned_keys: usize,
}

impl CacheStatus {
    /// `warm (37 tuned kernels)` or `cold`.
    pub fn describe(&self) -> String {
        match self.tuned_keys {
            0 => "cold".to_string(),
            n => format!("warm ({n} tuned kernels)"),
        }
    }
}

/// A file name out of a GPU model name (`NVIDIA H200` -> `NVIDIA_H200`).
fn path_segment(model: &str) -> String {
    let segment: String = model
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || "-._".contains(c) {
            true => c,
            false => '_',
        })
        .collect();
    match segment.trim_matches('_') {
        "" => "unknown-gpu".to_string(),
        s => s.to_string(),
    }
}

impl KernelCache {
    /// `--kernel-cache`, else `ALEXNET_KERNEL_CACHE`, else `alexnet-burn/kernels` in the user's
    /// cache directory (`~/.cache` on Linux).
    pub fn resolve(flag: Option<&Path>) -> Self {
        let root = flag
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("ALEXNET_KERNEL_CACHE").map(PathBuf::from))
            .or_else(|| dirs::cache_dir().map(|d| d.join("alexnet-burn").join("kernels")))
            .unwrap_or_else(|| PathBuf::from(".alexnet-kernel-cache"));
        Self { root }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one GPU model at one autotune level, for this build.
    pub fn device_dir(&self, model: &str, level: TuneLevel) -> PathBuf {
        self.root
            .join(path_segment(model))
            .join(build_key())
            .join(level.name())
    }

    /// The GPU drivers' own caches (CUDA's JIT cache, Mesa's and NVIDIA's shader caches), which
    /// key their entries by GPU themselves; a variable the user set is kept.
    fn driver_dir(&self) -> PathBuf {
        self.root.join("driver")
    }

    /// Points the drivers' caches into the kernel cache. Call it first thing in `main`, before
    /// any thread exists: it sets environment variables.
    ///
    /// # Safety
    /// No other thread may read or write the environment meanwhile.
    pub unsafe fn export_driver_caches(&self) {
        let driver = self.driver_dir();
        let vars = [
            ("CUDA_CACHE_PATH", driver.join("cuda")),
            ("MESA_SHADER_CACHE_DIR", driver.join("mesa")),
            ("__GL_SHADER_DISK_CACHE_PATH", driver.join("nvidia")),
        ];
        for (name, value) in vars {
            // Mesa disables its cache when the directory is missing; a failure here leaves the
            // driver's own fallback in place.
            if std::env::var_os(name).is_none() && fs::create_dir_all(&value).is_ok() {
                // SAFETY: the caller guarantees a single-threaded process.
                unsafe { std::env::set_var(name, value) };
            }
        }
        if std::env::var_os("CUDA_CACHE_MAXSIZE").is_none() {
            // CUDA's default of 256 MiB can evict this network's kernels; 4 GiB is its maximum.
            // SAFETY: as above.
            unsafe { std::env::set_var("CUDA_CACHE_MAXSIZE", "4294967296") };
        }
    }

    /// What the cache holds for `model` at `level`.
    pub fn status(&self, model: &str, level: TuneLevel) -> CacheStatus {
        let dir = self.device_dir(model, level);
        CacheStatus {
            tuned_keys: count_tuned_keys(&dir),
            dir,
        }
    }
}

/// The kernel cache directory and autotune level a process's GPU runtime was given. cubecl
/// reads its configuration once per process, at the first kernel; a second task asking for
/// another directory or level would silently get the first, so it is refused instead.
#[derive(Debug, Default)]
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
struct ProcessCache(std::sync::OnceLock<(PathBuf, TuneLevel)>);

#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
impl ProcessCache {
    /// Claims the runtime for `dir` at `level`; `configure` runs for the first claim only.
    /// Claiming the same directory and level again is fine.
    fn claim(
        &self,
        dir: &Path,
        level: TuneLevel,
        configure: impl FnOnce(),
    ) -> Result<(), BackendError> {
        let first = self.0.get_or_init(|| {
            configure();
            (dir.to_path_buf(), level)
        });
        match *first == (dir.to_path_buf(), level) {
            true => Ok(()),
            false => Err(BackendError::KernelCacheInUse {
                first: first.clone(),
                second: (dir.to_path_buf(), level),
            }),
        }
    }
}

/// Points cubecl at `dir` for its autotune results (at `level`) and compiled kernels, keeping
/// the rest of the user's `cubecl.toml` and `CUBECL_*` variables; once per process.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn configure_cubecl(dir: &Path, level: TuneLevel) -> Result<(), BackendError> {
    use cubecl::config::autotune::AutotuneLevel;
    use cubecl::config::cache::CacheConfig;
    use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
    static CONFIGURED: ProcessCache = ProcessCache(std::sync::OnceLock::new());
    CONFIGURED.claim(dir, level, || {
        let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
        config.autotune.cache = CacheConfig::File(dir.to_path_buf());
        config.autotune.level = match level {
            TuneLevel::Minimal => AutotuneLevel::Minimal,
            TuneLevel::Balanced => AutotuneLevel::Balanced,
            TuneLevel::Extensive => AutotuneLevel::Extensive,
            TuneLevel::Full => AutotuneLevel::Full,
        };
        config.compilation.cache = Some(CacheConfig::File(dir.to_path_buf()));
        CubeClRuntimeConfig::set(config);
    })
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl KernelCache {
    /// Makes the GPU backend keep its kernels for `model` in this cache: creates the directory,
    /// repairs damaged entries (one warning line each) and configures cubecl. Returns the
    /// directory.
    pub fn activate(&self, model: &str, level: TuneLevel) -> Result<PathBuf, BackendError> {
        let dir = self.device_dir(model, level);
        fs::create_dir_all(&dir).map_err(|source| BackendError::KernelCacheUnwritable {
            dir: dir.clone(),
            source,
        })?;
        for note in repair(&dir) {
            eprintln!("warning: {note}");
        }
        configure_cubecl(&dir, level)?;
        Ok(dir)
    }
}

/// cubecl's autotune files below `dir`: `autotune/<cubecl version>/<device>/<op>.json.log`.
fn autotune_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.join("autotune")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".json.log") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Autotune results stored below `dir` (one JSON line per operation and shape).
pub fn count_tuned_keys(dir: &Path) -> usize {
    autotune_files(dir)
        .iter()
        .map(|path| {
            fs::read(path)
                .map(|bytes| good_lines(&bytes).count())
                .unwrap_or(0)
        })
        .sum()
}

/// The lines of a cache file that are whole JSON entries.
fn good_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|line| serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok())
}

/// Drops the entries of the autotune files below `dir` that do not parse (a crash while
/// writing, a damaged disk), so that cubecl re-tunes them; one line per repaired file. A file
/// that cannot be read or written is moved aside; cubecl would panic on it.
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
pub fn repair(dir: &Path) -> Vec<String> {
    let mut notes = Vec::new();
    for path in autotune_files(dir) {
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) => {
                let aside = path.with_extension("unreadable");
                let _ = fs::rename(&path, &aside);
                notes.push(format!(
                    "kernel cache file {} could not be read ({err}); moved aside, its kernels \
                     will be tuned again",
                    path.display()
                ));
                continue;
            }
        };
        let lines = bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        let good: Vec<&[u8]> = good_lines(&bytes).collect();
        if good.len() == lines {
            continue;
        }
        let mut kept = good.join(&b'\n');
        if !kept.is_empty() {
            kept.push(b'\n');
        }
        let rewritten = fs::write(&path, kept);
        let bad = lines - good.len();
        notes.push(match rewritten {
            Ok(()) => format!(
                "kernel cache file {} had {bad} damaged entries; they were dropped and will be \
                 tuned again",
                path.display()
            ),
            Err(err) => format!(
                "kernel cache file {} has {bad} damaged entries and cannot be rewritten ({err}); \
                 delete it, or pass another --kernel-cache",
                path.display()
            ),
        });
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_keyed_by_model_build_and_level() {
        let cache = KernelCache::resolve(Some(Path::new("/c")));
        let dir = cache.device_dir("NVIDIA H200 / rev 1", TuneLevel::Minimal);
        let expected = Path::new("/c/NVIDIA_H200___rev_1")
            .join(build_key())
            .join("minimal");
        assert_eq!(dir, expected);
        assert_ne!(
            cache.device_dir("NVIDIA H100", TuneLevel::Minimal),
            dir,
            "another GPU model never shares a directory"
        );
        assert_eq!(path_segment("///"), "unknown-gpu");
    }

    #[test]
    fn damaged_entries_are_dropped_and_counted_out() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("autotune/0.10.0/device-0");
        fs::create_dir_all(&device).unwrap();
        let file = device.join("matmul.json.log");
        fs::write(
            &file,
            "{\"key\":1}\n{\"key\":2,\"va\n\u{1}\u{2}\n{\"key\":3}\n",
        )
        .unwrap();
        assert_eq!(count_tuned_keys(dir.path()), 2);
        let notes = repair(dir.path());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("2 damaged entries"), "{notes:?}");
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "{\"key\":1}\n{\"key\":3}\n"
        );
        assert!(repair(dir.path()).is_empty(), "a repaired file stays quiet");
        assert_eq!(count_tuned_keys(dir.path()), 2);
    }

    #[test]
    fn a_second_cache_directory_in_one_process_is_refused() {
        let process = ProcessCache::default();
        let mut configured = 0;
        let (a, b) = (Path::new("/cache/a"), Path::new("/cache/b"));
        process
            .claim(a, TuneLevel::Balanced, || configured += 1)
            .unwrap();
        process
            .claim(a, TuneLevel::Balanced, || configured += 1)
            .unwrap();
        assert_eq!(configured, 1, "the runtime is configured once");
        let err = process
            .claim(b, TuneLevel::Balanced, || configured += 1)
            .unwrap_err();
        assert!(
            err.to_string().contains("cannot switch to /cache/b"),
            "{err}"
        );
        assert!(
            process.claim(a, TuneLevel::Full, || {}).is_err(),
            "nor another level"
        );
        assert_eq!(configured, 1);
    }

    #[test]
    fn the_level_follows_the_flag_then_the_environment() {
        assert_eq!(TuneLevel::resolve(Some(TuneLevel::Full)), TuneLevel::Full);
    }
}
