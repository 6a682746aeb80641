#!/usr/bin/env python3
"""torchvision's image-folder loading, the counterpart of `alexnet bench --images DIR`.

torchvision's `ImageFolder` (PIL decoding) with the evaluation transform, `Resize(side)` then
`CenterCrop(side)` and `ToTensor()` (and `Grayscale()` first for one channel), in a
`DataLoader(batch_size, num_workers)`. Every image of the folder (all of its subfolders: a
train/val folder counts both) is read once per pass; --warmup passes, then --iters timed ones.
Prints one line on stdout, `loader_img_per_s=<x>` (images over the median pass), and the
details on stderr.
"""
import argparse
import statistics
import sys
import time

import torch
from torch.utils.data import ConcatDataset, DataLoader
from torchvision import datasets, transforms

import d2l_alexnet as d2l


def folder_datasets(root, transform):
    """ImageFolder over root, or over root/train and root/val when both exist."""
    import os
    splits = [os.path.join(root, s) for s in ("train", "val")]
    if all(os.path.isdir(s) for s in splits):
        return ConcatDataset([datasets.ImageFolder(s, transform) for s in splits])
    return datasets.ImageFolder(root, transform)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", help="an image folder: one subfolder per class")
    p.add_argument("--resize", type=int, default=224)
    p.add_argument("--channels", type=int, choices=[1, 3], default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--iters", type=int, default=3, help="timed passes; the median is reported")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes first")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the main process")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    steps = [transforms.Resize(a.resize), transforms.CenterCrop(a.resize), transforms.ToTensor()]
    if a.channels == 1:
        steps.insert(0, transforms.Grayscale(1))
    data = folder_datasets(a.folder, transforms.Compose(steps))
    loader = DataLoader(data, batch_size=a.batch, num_workers=a.num_workers)

    def one_pass():
        start = time.perf_counter()
        for images, _ in loader:
            images.sum()  # the batch is whole in the main process
        return time.perf_counter() - start

    for _ in range(a.warmup):
        one_pass()
    times = [one_pass() for _ in range(a.iters)]
    rate = len(data) / statistics.median(times)
    print(f"[loader_ref] torch {torch.__version__}, {d2l.cpu_model()}; {len(data)} images of "
          f"{a.folder}, {a.channels} channel(s) at {a.resize} px, batch {a.batch}, "
          f"{a.num_workers} workers; passes s: " + " ".join(f"{t:.2f}" for t in times)
          + f"; load average {d2l.load_average()}", file=sys.stderr, flush=True)
    print(f"loader_img_per_s={rate:.1f}", flush=True)


if __name__ == "__main__":
    main()
