#!/usr/bin/env bash
# Builds what a lent GPU machine needs into one folder that the device tool can carry (at most
# 64 MiB): the CUDA binary (stripped, xz-compressed), the four Fashion-MNIST files, the GPU
# scripts and the PyTorch reference. The GPU machine has PyTorch but no data package and no
# network.
#
#   scripts/gpu-bundle.sh [DIR]        (default .gpu, which .git/info/exclude should list)
#
# KERNELS=FILE adds the kernels.tar.xz an earlier lease's gpu-protocol.sh brought back (the
# kernel cache of the same build and GPU model), so that training starts warm.
#
# NOFUSION=1 adds alexnet-nofusion, built without Burn's kernel fusion, for gpu-check.sh's
# optional fusion comparison (NOFUSION_BIN).
#
# Then, in one `run` with `carry: [".gpu"]`:
#   . .gpu/unpack.sh && .gpu/scripts/gpu-check.sh .gpu/alexnet .gpu/data $OUT/check
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
cp ../shared/reference/pytorch/*.py "$dir/reference/"
cat > "$dir/unpack.sh" <<'UNPACK'
#!/usr/bin/env bash
# Unpacks the binary beside this script (python3's lzma: the image may lack xz).
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
