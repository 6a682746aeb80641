#!/usr/bin/env python3
"""Writes a folder of JPEG "photos" for loader benchmarks: N images per class, colour, of
camera-like sizes (500x375 and 375x500 by default), made from Fashion-MNIST pictures blown up,
tinted and textured, so that they compress like photos rather than like flat drawings.

  python3 scripts/photo_folder.py OUT [--per-class 200] [--size 500x375] [--quality 90]
                                      [--texture 12]

--texture is the spread of the per-pixel noise (0 to 255): it decides how much a JPEG holds, and
so its decoding time; 12 at 500x375 gives files of about 70 KB, 3 at 2000x1500 about 320 KB.

Needs numpy and Pillow (reference/pytorch/requirements.txt) and the data package.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference", "pytorch"))
import d2l_alexnet as d2l  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--per-class", type=int, default=200)
    p.add_argument("--size", default="500x375", help="WxH; every other image is turned upright")
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--texture", type=float, default=12.0)
    p.add_argument("--data-dir", default=d2l.DATA_DIR)
    a = p.parse_args()
    width, height = map(int, a.size.split("x"))
    images, labels = d2l.load_split("train", None, a.data_dir)
    rng = np.random.default_rng(0)
    counts = {}
    for image, label in zip(images, labels):
        label = int(label)
        if counts.get(label, 0) >= a.per_class:
            continue
        n = counts[label] = counts.get(label, 0) + 1
        w, h = (width, height) if n % 2 else (height, width)
        big = np.asarray(Image.fromarray(image).resize((w, h), Image.BICUBIC), dtype=np.float32)
        tint = rng.uniform(0.4, 1.0, size=3)
        texture = rng.normal(0.0, a.texture, size=(h, w, 3))
        gradient = np.linspace(0, 60, w)[None, :, None]
        rgb = np.clip(big[:, :, None] * tint + texture + gradient, 0, 255).astype(np.uint8)
        folder = os.path.join(a.out, f"class{label}")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(rgb).save(os.path.join(folder, f"{n:05d}.jpg"), quality=a.quality)
        if len(counts) == 10 and all(c >= a.per_class for c in counts.values()):
            break
    print(f"wrote {sum(counts.values())} JPEG images to {a.out}")


if __name__ == "__main__":
    main()
