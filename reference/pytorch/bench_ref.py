#!/usr/bin/env python3
"""Throughput of d2l's AlexNet (or torchvision's, --arch imagenet) in PyTorch, the counterpart of
`alexnet bench`.

Prints one line on stdout, `train_img_per_s=<x> infer_img_per_s=<y> infer_p50_ms=<p>
infer_p99_ms=<q>`, and the details (each step's time, the CPU, the load average) on stderr. A
training step is what d2l's timer covers: zero_grad, forward, cross-entropy, backward, SGD
update (lr 0.01) and reading the loss; inference is an evaluation-mode forward pass under
torch.inference_mode(), and the predicted classes. Each runs --warmup untimed steps, then
--iters timed ones; the figure is the batch size over the median step time, and inference's
p50 and p99 step latency. On CUDA every step ends with torch.cuda.synchronize(), so the clock
stops when the GPU is done. `--arch imagenet` times torchvision's `alexnet()` (random weights,
1,000 classes) on random RGB pixels, as `alexnet bench --arch imagenet` does.
"""
import argparse
import json
import statistics
import sys
import time

import torch
from torch import nn

import d2l_alexnet as d2l


def batch(size, side, synthetic, seed, data_dir, channels=1, classes=10):
    """Random pixels and labels, or the first real training images resized as d2l does."""
    if synthetic:
        generator = torch.Generator().manual_seed(seed)
        return (torch.rand(size, channels, side, side, generator=generator),
                torch.randint(0, classes, (size,), generator=generator))
    images, labels = d2l.load_split("train", size, data_dir)
    return d2l.to_tensor(images, side), torch.from_numpy(labels)


def network(arch, side, seed):
    """The network and its (input channels, classes)."""
    if arch == "d2l":
        return d2l.build(side, seed), (1, 10)
    import torchvision
    torch.manual_seed(seed)
    return torchvision.models.alexnet(), (3, 1000)


def step_times(step, warmup, iters):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def percentile(values, p):
    """The nearest-rank percentile p (0 to 100), as `alexnet bench` takes its p99 (its p50 is
    the upper median, which this gives for 50 too)."""
    ordered = sorted(values)
    if p == 50:
        return ordered[len(ordered) // 2]
    rank = -(-p * len(ordered) // 100)
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=128, help="images per training step")
    p.add_argument("--infer-batch", type=int, help="images per inference pass (default: --batch)")
    p.add_argument("--resize", type=int, default=224)
    p.add_argument("--arch", choices=["d2l", "imagenet"], default="d2l",
                   help="d2l's network, or torchvision's alexnet() (random pixels only)")
    p.add_argument("--iters", type=int, default=6, help="timed steps; the median is reported")
    p.add_argument("--warmup", type=int, default=4, help="untimed steps first")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synthetic", action="store_true",
                   help="random pixels instead of real images (same cost, no data needed)")
    p.add_argument("--data-dir", default=d2l.DATA_DIR)
    p.add_argument("--json", metavar="FILE", help="also write every step's time to FILE")
    a = p.parse_args()
    infer_batch = a.infer_batch or a.batch
    if a.arch == "imagenet" and not a.synthetic:
        p.error("--arch imagenet times random RGB pixels: add --synthetic")

    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else d2l.cpu_model()
    print(f"[bench_ref] torch {torch.__version__} on {where}, {a.threads} threads; "
          f"{a.arch}'s network, {a.resize} px, batch {a.batch}, inference batch {infer_batch}; "
          f"{a.iters} timed steps after {a.warmup}", file=sys.stderr, flush=True)

    net, shape = network(a.arch, a.resize, a.seed)
    net = net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    data = (a.synthetic, a.seed, a.data_dir) + shape
    images, labels = (t.to(device) for t in batch(a.batch, a.resize, *data))

    def train_step():
        optimizer.zero_grad()
        loss = loss_fn(net(images), labels)
        loss.backward()
        optimizer.step()
        loss.item()
        sync()

    net.train()
    train_times = step_times(train_step, a.warmup, a.iters)

    infer_images = batch(infer_batch, a.resize, *data)[0].to(device)

    def infer_step():
        with torch.inference_mode():
            net(infer_images).argmax(1).cpu()
        sync()

    net.eval()
    infer_times = step_times(infer_step, a.warmup, a.iters)

    train_rate = a.batch / statistics.median(train_times)
    infer_rate = infer_batch / statistics.median(infer_times)
    infer_p50, infer_p99 = (1e3 * percentile(infer_times, p) for p in (50, 99))
    for name, times in (("train", train_times), ("infer", infer_times)):
        print(f"[bench_ref] {name} step s: " + " ".join(f"{t:.3f}" for t in times),
              file=sys.stderr)
    print(f"[bench_ref] load average {d2l.load_average()}", file=sys.stderr, flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"torch": torch.__version__, "device": where, "args": vars(a),
                       "arch": a.arch,
                       "train_step_seconds": train_times, "infer_step_seconds": infer_times,
                       "train_img_per_s": train_rate, "infer_img_per_s": infer_rate,
                       "infer_p50_ms": infer_p50, "infer_p99_ms": infer_p99}, f, indent=1)
    print(f"train_img_per_s={train_rate:.2f} infer_img_per_s={infer_rate:.2f} "
          f"infer_p50_ms={infer_p50:.2f} infer_p99_ms={infer_p99:.2f}", flush=True)


if __name__ == "__main__":
    main()
