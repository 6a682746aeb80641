"""torchvision's ImageNet evaluation transform on real photos, for tests/imagenet_transform.rs.

`AlexNet_Weights.IMAGENET1K_V1.transforms()` is torchvision's `ImageClassification(crop_size=224)`:
`Resize(256)` (PIL's bilinear resize of the shorter side, antialiased on PIL images), then
`CenterCrop(224)`, `ToTensor` (bytes / 255) and `Normalize` by ImageNet's mean and std, all in
float32. On a PIL image, torchvision does each step with PIL and then NumPy-equivalent float32
arithmetic, so this script needs only Pillow and NumPy (no torch):

    python reference/pytorch/imagenet_transform.py tests/fixtures/photos

For each photo `NAME.png` or `NAME.jpg` in the folder it writes `NAME.png.imagenet.png` or
`NAME.jpg.imagenet.png` (the 224x224 RGB crop, 8 bits, what `Resize` and `CenterCrop` give) and
adds to `imagenet.json` the first and last 8 normalised values of each channel and each channel's
float64 sum, which the Rust side compares. For a JPEG the crop starts from PIL's libjpeg decode,
so it shows how far another decoder's pixels are from it.
"""

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def resize_shorter(image, size):
    """torchvision's `Resize(size)` on a PIL image: `_compute_resized_output_size`, then PIL."""
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    return image.resize((new_w, new_h), Image.BILINEAR)


def center_crop(image, size):
    """torchvision's `CenterCrop(size)`: `int(round((dim - size) / 2.0))` from each edge."""
    width, height = image.size
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def transform(path, resize=256, crop=224):
    image = Image.open(path).convert("RGB")
    cropped = center_crop(resize_shorter(image, resize), crop)
    tensor = np.asarray(cropped, dtype=np.float32).transpose(2, 0, 1) / np.float32(255)
    normalised = (tensor - MEAN[:, None, None]) / STD[:, None, None]
    return cropped, normalised.astype(np.float32)


def main():
    folder = Path(sys.argv[1])
    summary = {}
    photos = sorted(folder.glob("*.png")) + sorted(folder.glob("*.jpg"))
    for path in photos:
        if path.name.endswith(".imagenet.png"):
            continue
        cropped, normalised = transform(path)
        cropped.save(folder / f"{path.name}.imagenet.png")
        planes = normalised.reshape(3, -1)
        summary[path.name] = {
            "head": [[float(v) for v in plane[:8]] for plane in planes],
            "tail": [[float(v) for v in plane[-8:]] for plane in planes],
            "sum": [float(plane.astype(np.float64).sum()) for plane in planes],
        }
    (folder / "imagenet.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
