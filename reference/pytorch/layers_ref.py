#!/usr/bin/env python3
"""Each layer of AlexNet timed alone, the counterpart of `alexnet bench --layers`.

Every layer of the chapter's nn.Sequential (or, with --arch imagenet, of torchvision's
alexnet(): its features, average pooling, flattening and classifier in turn) runs on the output of the layers before it, in
training mode (dropout active): forward time is the layer's call, backward time is
`backward()` of sum(y * g) for a fixed random g. The input of the first layer (the images)
needs no gradient, as in training. Medians of --iters timed repetitions after --warmup.
"""
import argparse
import json
import statistics
import time

import torch

import d2l_alexnet as d2l
from bench_ref import network


def time_layer(layer, x, needs_grad, warmup, iters):
    x = x.detach().requires_grad_(needs_grad)
    y = layer(x)
    g = torch.randn_like(y)
    forward, backward = [], []
    for i in range(warmup + iters):
        start = time.perf_counter()
        y = layer(x)
        middle = time.perf_counter()
        (y * g).sum().backward()
        end = time.perf_counter()
        if i >= warmup:
            forward.append(middle - start)
            backward.append(end - middle)
        layer.zero_grad()
        x.grad = None
    return y.detach(), statistics.median(forward) * 1e3, statistics.median(backward) * 1e3


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", choices=["d2l", "imagenet"], default="d2l",
                   help="d2l's network or torchvision's alexnet()")
    p.add_argument("--resize", type=int, default=224)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net, (channels, _) = network(a.arch, a.resize, 0)
    net = net.train()
    if a.arch == "imagenet":
        # torchvision's ReLUs work in place, which a layer's own input (a leaf that needs a
        # gradient) does not allow when timed alone.
        layers = [*net.features, net.avgpool, torch.nn.Flatten(), *net.classifier]
        net = [torch.nn.ReLU() if isinstance(l, torch.nn.ReLU) else l for l in layers]
    x = torch.rand(a.batch, channels, a.resize, a.resize)
    rows = []
    for index, layer in enumerate(net, 1):
        x, forward_ms, backward_ms = time_layer(layer, x, index > 1, a.warmup, a.iters)
        rows.append({"index": index, "layer": type(layer).__name__, "output": list(x.shape),
                     "forward_ms": forward_ms, "backward_ms": backward_ms})
    if a.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"torch {torch.__version__}, {d2l.cpu_model()}, {a.threads} threads, "
          f"batch {a.batch}, {a.resize}x{a.resize}")
    for r in rows:
        print(f"{r['index']:2d} {r['layer']:10s} {str(tuple(r['output'])):22s} "
              f"fwd {r['forward_ms']:8.2f} ms  bwd {r['backward_ms']:8.2f} ms")
    print(f"total fwd {sum(r['forward_ms'] for r in rows):.1f} ms, "
          f"bwd {sum(r['backward_ms'] for r in rows):.1f} ms")


if __name__ == "__main__":
    main()
