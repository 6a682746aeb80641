//! `alexnet download`: a weights file (by default torchvision's ImageNet AlexNet) into the cache
//! folder, for `import --from` and `train --init-from`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::download::{self, Fetched, TORCHVISION_ALEXNET};

/// Flags of `alexnet download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The file's URL; a SHA-256 prefix in its name (torch.hub's `NAME-HASH.pth`) is checked.
    #[arg(value_name = "URL", default_value = TORCHVISION_ALEXNET)]
    pub url: String,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// Where downloaded weights are kept.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// The folder that keeps downloaded weights (and partial downloads, resumed by the next
    /// try) [default: ~/.cache/alexnet-burn].
    #[arg(long, value_name = "DIR", env = "ALEXNET_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl CacheArgs {
    /// `from` itself if it is a local path; a URL's file, downloaded into the cache if needed.
    pub fn local(&self, from: PathBuf) -> Result<PathBuf> {
        match from.to_str().filter(|f| download::is_url(f)) {
            Some(url) => Ok(self.fetch(url)?.path),
            None => Ok(from),
        }
    }

    /// The cache folder.
    pub fn dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(download::default_cache_dir)
    }

    fn fetch(&self, url: &str) -> Result<Fetched> {
        let fetched = download::fetch(url, &self.dir(), true)?;
        eprintln!("{}", outcome(&fetched));
        Ok(fetched)
    }
}

/// Downloads the file and prints its path (on stdout, for `--from "$(alexnet download)"`).
pub fn download(args: &DownloadArgs) -> Result<()> {
    let fetched = args.cache.fetch(&args.url)?;
    println!("{}", fetched.path.display());
    Ok(())
}

/// One line on what happened: cached, or downloaded (resumed) and how its hash was checked.
fn outcome(fetched: &Fetched) -> String {
    let path = fetched.path.display();
    let check = match &fetched.checked_hash {
        Some(hash) => format!("SHA-256 {hash}… as its name says"),
        None => "no hash in its name, not checked".into(),
    };
    match (fetched.downloaded, fetched.resumed_from) {
        (0, _) => format!("{path}: in the cache"),
        (n, 0) => format!("{path}: downloaded {}; {check}", bytes(n)),
        (n, from) => format!(
            "{path}: downloaded {} more after {}; {check}",
            bytes(n),
            bytes(from)
        ),
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..1_000_000 => format!("{} bytes", crate::human::thousands(n as usize)),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}
