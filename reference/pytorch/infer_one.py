"""One image through d2l's AlexNet in PyTorch, as a whole process: what `alexnet infer one.png`
is compared with, start to answer (Python and PyTorch imported, the weights read, the image
decoded and resized as torchvision does, one forward pass, the top classes printed).

    python infer_one.py WEIGHTS.safetensors IMAGE [--resize 224] [--timings]

WEIGHTS: a state dict (`alexnet export --out WEIGHTS.safetensors`). --timings prints, to stderr,
the milliseconds from the interpreter's start to each step's end.
"""
import time

START = time.perf_counter()

import argparse  # noqa: E402

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from torchvision import transforms  # noqa: E402

import d2l_alexnet as d2l  # noqa: E402

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
           "ankle boot"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("weights")
    p.add_argument("image")
    p.add_argument("--resize", type=int, default=224)
    p.add_argument("--timings", action="store_true")
    a = p.parse_args()
    marks = [("imports", time.perf_counter())]
    torch.set_num_threads(torch.get_num_threads())
    net = d2l.alexnet(a.resize)
    net.load_state_dict(load_file(a.weights), strict=True)
    net.eval()
    marks.append(("weights", time.perf_counter()))
    transform = transforms.Compose([transforms.Resize(a.resize), transforms.CenterCrop(a.resize),
                                    transforms.ToTensor()])
    x = transform(Image.open(a.image).convert("L")).unsqueeze(0)
    marks.append(("image", time.perf_counter()))
    with torch.inference_mode():
        probs = torch.softmax(net(x), dim=1)[0]
    marks.append(("forward", time.perf_counter()))
    top = torch.topk(probs, 3)
    for p_, i in zip(top.values.tolist(), top.indices.tolist()):
        print(f"{CLASSES[i]}: {p_:.3f}")
    if a.timings:
        import sys
        print(" ".join(f"{name} {1000 * (t - START):.0f} ms" for name, t in marks), file=sys.stderr)


if __name__ == "__main__":
    main()
