"""Pillow's own resize and centre crop, as torchvision's Resize(N) + CenterCrop(S) run them on a
PIL image: the reference that tests/pillow_resize.rs compares `alexnet`'s resize with, byte for
byte.

    python resize.py JOBS.json

JOBS.json: a list of {"image", "mode" (L or RGB), "resize_to", "crop", "out"}; each crop is
written to "out" as a PNG (lossless).
"""

import json
import sys

from PIL import Image


def resize_and_crop(path, mode, resize_to, crop):
    image = Image.open(path).convert(mode)
    width, height = image.size
    # torchvision's Resize(int): the shorter side to resize_to, the longer int(resize_to * long / short).
    if width <= height:
        size = (resize_to, int(resize_to * height / width))
    else:
        size = (int(resize_to * width / height), resize_to)
    image = image.resize(size, Image.BILINEAR)
    # torchvision's CenterCrop: int(round((resized - crop) / 2)).
    left = int(round((size[0] - crop) / 2.0))
    top = int(round((size[1] - crop) / 2.0))
    return image.crop((left, top, left + crop, top + crop))


def main():
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    for job in jobs:
        resize_and_crop(job["image"], job["mode"], job["resize_to"], job["crop"]).save(job["out"])
    print(f"{len(jobs)} crops written")


if __name__ == "__main__":
    main()
