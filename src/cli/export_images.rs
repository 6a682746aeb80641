//! `alexnet export-images`: a Fashion-MNIST split as a folder of PNG files, one subfolder per
//! class, the layout `train --images` reads.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::data::{self, FashionMnist, Split};
use crate::run;

/// Flags of `alexnet export-images`.
#[derive(Debug, Args)]
pub struct ExportImagesArgs {
    /// The split to write.
    #[arg(long, value_enum, default_value = "test")]
    pub split: Split,
    /// The folder to create (missing or empty): OUT/<class>/<index>.png.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Write the first N images only.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Directory with the Fashion-MNIST files.
    #[arg(long, value_name = "DIR", env = "FASHION_MNIST_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Writes the split's images.
pub fn export(args: &ExportImagesArgs) -> Result<()> {
    if args.limit == Some(0) {
        anyhow::bail!("--limit must be at least 1");
    }
    let split = FashionMnist::load(args.split, args.data_dir.as_deref())?.truncated(args.limit);
    let classes = run::fashion_mnist_classes();
    let written = data::export_png_folder(&split, &classes, &args.out)?;
    println!(
        "wrote {written} images of the {} split to {} (one folder per class); train on such a \
         folder with: alexnet train --images {}",
        args.split,
        args.out.display(),
        args.out.display()
    );
    Ok(())
}
