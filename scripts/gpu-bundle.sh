#!/usr/bin/env bash
# Packages a CUDA build and the data for a GPU machine without a Rust toolchain: one folder
# with the binary (built with `--features cuda`, stripped, xz-compressed), the four
# Fashion-MNIST files, the GPU scripts and the PyTorch reference. Copy the folder to the GPU
# machine (it needs the NVIDIA driver, and Python with PyTorch for the side-by-side steps; not
# the data package, nor a network connection), then run there:
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
cargo build --release --features cuda
target=${CARGO_TARGET_DIR:-target}
strip -o "$dir/alexnet" "$target/release/alexnet"
xz -T0 -6 "$dir/alexnet"
if [ -n "${NOFUSION:-}" ]; then
  cargo build --release --no-default-features --features flex,cuda
  strip -o "$dir/alexnet-nofusion" "$target/release/alexnet"
  xz -T0 -6 "$dir/alexnet-nofusion"
  cargo build --release --features cuda # leave the default build in place
fi
cp "$data"/*-ubyte* "$dir/data/"
[ -n "${KERNELS:-}" ] && cp "$KERNELS" "$dir/kernels.tar.xz"
cp scripts/gpu-check.sh scripts/gpu-protocol.sh scripts/steps.sh "$dir/scripts/"
cp reference/pytorch/*.py reference/pytorch/requirements.txt "$dir/reference/"
cat > "$dir/unpack.sh" <<'UNPACK'
#!/usr/bin/env bash
# Unpacks the binary beside this script (python3's lzma: the machine may lack xz).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for bin in alexnet alexnet-nofusion; do
  [ -f "$here/$bin.xz" ] || continue
  python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
    "$here/$bin.xz" "$here/$bin" && chmod +x "$here/$bin"
done
export REF=$here/reference
UNPACK
chmod +x "$dir/unpack.sh"
du -sh "$dir" "$dir"/*
