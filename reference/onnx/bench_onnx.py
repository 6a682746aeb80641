"""ONNX Runtime's inference speed on a model written by `alexnet export --format onnx`:
random inputs of the model's shape, `--warmup` untimed calls, then `--iters` timed ones.
Prints the same key=value line as reference/pytorch/bench_ref.py (p50 is the upper median,
p99 the nearest rank, as `alexnet bench` takes them).

    python bench_onnx.py model.onnx --batch 32 [--iters 20] [--warmup 5] [--threads N]
"""

import argparse
import os
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="intra-op threads (default: every CPU, as alexnet uses)")
    a = parser.parse_args()

    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(a.model, options, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    shape = [a.batch] + [int(d) for d in first.shape[1:]]
    images = np.random.default_rng(0).random(shape, dtype=np.float32)
    feed = {first.name: images}
    for _ in range(a.warmup):
        session.run(None, feed)
    times = []
    for _ in range(a.iters):
        start = time.perf_counter()
        session.run(None, feed)  # returns NumPy arrays: the work is done when it returns
        times.append(time.perf_counter() - start)
    # The upper median and the nearest-rank p99, as `alexnet bench` and bench_ref.py take them.
    p50 = 1e3 * np.percentile(times, 50, method="higher")
    p99 = 1e3 * np.percentile(times, 99, method="inverted_cdf")
    print(f"[bench_onnx] onnxruntime {ort.__version__}, {a.threads} threads, input {shape}",
          file=sys.stderr)
    print(f"infer_img_per_s={a.batch / (p50 / 1e3):.2f} infer_p50_ms={p50:.2f} "
          f"infer_p99_ms={p99:.2f}", flush=True)


if __name__ == "__main__":
    main()
