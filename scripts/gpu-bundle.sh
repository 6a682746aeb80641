#!/usr/bin/env bash
# Packages a CUDA build and the data for a GPU machine without a Rust toolchain: one folder
# with the binary (built with `--features cuda,cudnn`, stripped, xz-compressed), the cuDNN
# comparison test (`tests/cudnn.rs`, built the same way, run by gpu-check.sh), the four
# Fashion-MNIST files, the GPU scripts and the PyTorch reference. Copy the folder to the GPU
# machine (it needs the NVIDIA driver, and Python with PyTorch for the side-by-side steps; not
# the data package, nor a network connection; unpack.sh points the loader at the cuDNN that
# PyTorch's wheels bring), then run there:
#
#   . BUNDLE/unpack.sh && BUNDLE/scripts/gpu-protocol.sh BUNDLE/alexnet BUNDLE/data OUT
#   . BUNDLE/unpack.sh && BUNDLE/scripts/gpu-check.sh BUNDLE/alexnet BUNDLE/data OUT
#
#   scripts/gpu-bundle.sh [DIR]        (default .gpu, which git ignores)
#
# KERNELS=FILE adds the kernels.tar.xz that gpu-protocol.sh wrote on an earlier run (the kernel
# cache of the same build and GPU model), so that training starts warm.
#
# NOFUSION=1 adds alexnet-nofusion, built without Burn's kernel fusion, for gpu-check.sh's
# optional fusion comparison (NOFUSION_BIN).
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.gpu}
data=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
rm -rf "$dir" && mkdir -p "$dir/data" "$dir/scripts" "$dir/reference"
features=cuda,cudnn
cargo build --release --features "$features"
target=${CARGO_TARGET_DIR:-target}
strip -o "$dir/alexnet" "$target/release/alexnet"
xz -T0 -6 "$dir/alexnet"
# The test executable cargo builds for tests/cudnn.rs (its path carries a hash).
tests=$(cargo test --release --features "$features" --test cudnn --no-run --message-format=json |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "cudnn":
        print(m["executable"])')
strip -o "$dir/cudnn-tests" "$tests"
xz -T0 -6 "$dir/cudnn-tests"
if [ -n "${NOFUSION:-}" ]; then
  cargo build --release --no-default-features --features flex,$features
  strip -o "$dir/alexnet-nofusion" "$target/release/alexnet"
  xz -T0 -6 "$dir/alexnet-nofusion"
  cargo build --release --features "$features" # leave the default build in place
fi
cp "$data"/*-ubyte* "$dir/data/"
[ -n "${KERNELS:-}" ] && cp "$KERNELS" "$dir/kernels.tar.xz"
cp scripts/gpu-check.sh scripts/gpu-protocol.sh scripts/steps.sh "$dir/scripts/"
cp reference/pytorch/*.py reference/pytorch/requirements.txt "$dir/reference/"
cat > "$dir/unpack.sh" <<'UNPACK'
#!/usr/bin/env bash
# Unpacks the binary beside this script (python3's lzma: the machine may lack xz).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for bin in alexnet alexnet-nofusion cudnn-tests; do
  [ -f "$here/$bin.xz" ] || continue
  python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
    "$here/$bin.xz" "$here/$bin" && chmod +x "$here/$bin"
done
export REF=$here/reference
# cuDNN and cuBLAS from PyTorch's wheels (nvidia-cudnn-*, nvidia-cublas-*), where the machine
# has no system copy: the loader reads LD_LIBRARY_PATH when the binary starts.
nvidia_libs=$(python3 -c 'import glob, os, site
dirs = {os.path.dirname(p) for s in site.getsitepackages() for name in ("cudnn", "cublas")
        for p in glob.glob(f"{s}/nvidia/**/lib{name}.so.*", recursive=True)}
print(":".join(sorted(dirs)))' 2>/dev/null)
[ -n "$nvidia_libs" ] && export LD_LIBRARY_PATH=$nvidia_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
UNPACK
chmod +x "$dir/unpack.sh"
du -sh "$dir" "$dir"/*
