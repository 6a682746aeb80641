#!/usr/bin/env python3
"""PyTorch side of the parity checks, on the chapter's network and loop in d2l_alexnet.py.

  fixtures [--out tests/fixtures/pytorch_parity.json]
      Computes what tests/pytorch_parity.rs compares against, with d2l's own network in float64
      (and, for comparison, PyTorch's float32 error against it): logits of real test images at
      224 px, the mean cross-entropy, and after one SGD step (lr 0.01, dropout off) gradient and
      weight samples and norms of every tensor. The weights
      come from a formula both sides compute bit for bit (see `formula_weights`), so no weight
      file is shipped. The images' raw 28x28 pixels go into the fixture, so the Rust tests need
      neither PyTorch nor the data package.
  imagenet [--out tests/fixtures/torchvision_parity.json]
      The same for torchvision's `alexnet()` (ImageNet's network) with formula weights, on real
      photos (tests/fixtures/photos) through torchvision's own evaluation transform
      (`AlexNet_Weights.IMAGENET1K_V1.transforms()`): logits, loss and one SGD step on the PNG
      photos; and on the JPEG photos, where decoders differ, the float32 logits and top 5 that
      PyTorch's whole pipeline (PIL's libjpeg decoder included) gives.
  gradcam [--out tests/fixtures/gradcam.json]
      Grad-CAM of both networks (formula weights, float64, evaluation mode) on the images of the
      two fixtures above, through forward and gradient hooks on the last convolution's ReLU
      (`net[11]`, `features[11]`) as pytorch-grad-cam takes it: per image, the map of its top
      class and of its label, raw and scaled to [0, 1], and how far PyTorch's own float32 map
      is from it: a ReLU of the classifier that float32 rounding flips changes a map by up to
      1e-2 (d2l's fifth image).
  pickles [--out-dir tests/fixtures/torch]
      Writes the small torch.save files the import tests read without PyTorch: a state dict of
      another network, a full checkpoint dict around one, and a pickled list.
  train --resize N --epochs E [--limit-train N] --out FILE.safetensors
      Trains with d2l's loop (train_ch6) (d2l's protocol at that size) and saves the state dict.
  eval --weights FILE.safetensors --resize N
      Loads a state dict strictly into the chapter's network and prints its accuracy on all
      10,000 test images as JSON.
"""
import argparse
import json
import os
import zlib

import numpy as np
import torch
from torch import nn

import d2l_alexnet as d2l

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "tests", "fixtures")

# Test-set indices of the fixture images: the first eight (several classes).
IMAGES = list(range(8))
RESIZE = 224
LR = 0.01
SAMPLES = 24


def lowbias32(x):
    """Chris Wellons' lowbias32 integer hash, on uint32 arrays (wrapping arithmetic)."""
    x = x.astype(np.uint32)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def formula_weights(net):
    """Tensor t (state-dict order), flat index i (PyTorch layout):
    u = lowbias32(i + t * 0x9E3779B9 mod 2^32) / 2^32, value = f32((2u - 1) * bound) in f64
    arithmetic, bound = sqrt(6 / fan_in) for weights (He-uniform: unlike Xavier, it keeps the
    activations' scale through the ReLUs, so the logits are of order 1, not 0.01) and
    1 / sqrt(fan_in) for biases. Every step is exact or correctly rounded, so Rust gets the
    same bits."""
    state = {}
    for t, (key, p) in enumerate(net.state_dict().items()):
        n = p.numel()
        if p.dim() > 1:
            fan_in = int(np.prod(p.shape[1:]))
            bound = np.sqrt(6.0 / float(fan_in))
        else:
            weight = net.state_dict()[key.replace("bias", "weight")]
            fan_in = int(np.prod(weight.shape[1:]))
            bound = 1.0 / np.sqrt(float(fan_in))
        seed = np.uint64(t) * np.uint64(0x9E3779B9)
        i = (np.arange(n, dtype=np.uint64) + seed) & np.uint64(0xFFFFFFFF)
        u = lowbias32(i).astype(np.float64) / 4294967296.0
        values = ((2.0 * u - 1.0) * bound).astype(np.float32)
        state[key] = torch.from_numpy(values.reshape(tuple(p.shape)))
    return state


def sample_indices(n, t):
    """SAMPLES flat indices spread over a tensor of n values (both ends included)."""
    spread = np.linspace(0, n - 1, SAMPLES // 2).astype(np.int64)
    hashed = (lowbias32(np.arange(SAMPLES // 2, dtype=np.uint64) + np.uint64(1000 * t))
              .astype(np.int64) % n)
    return sorted(set(spread.tolist()) | set(hashed.tolist()))


def step(net, images, labels, dtype):
    """Logits (dropout off), the mean cross-entropy, then one SGD step as train_ch6 takes it with
    dropout off: returns (logits, loss, gradients, updated weights) in `dtype`."""
    net = net.to(dtype)
    net.eval()
    with torch.no_grad():
        logits = net(images.to(dtype))
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    optimizer.zero_grad()
    loss = nn.CrossEntropyLoss()(net(images.to(dtype)), torch.from_numpy(labels))
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in net.named_parameters()}
    optimizer.step()
    after = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return logits, float(loss.detach()), grads, after


def relative(a, b):
    """max |a - b| / max |b|."""
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max())


def tensor_summaries(grads, grads32, after):
    """Per tensor: gradient norms, PyTorch f32's distance from float64, and samples."""
    tensors = {}
    for t, key in enumerate(grads):
        g, w = grads[key].flatten(), after[key].flatten()
        idx = sample_indices(g.numel(), t)
        tensors[key] = {
            "shape": list(grads[key].shape),
            "grad_l2": float(g.norm()),
            "grad_max_abs": float(g.abs().max()),
            "torch_f32_grad_error": relative(grads32[key], grads[key]),
            "samples": [[i, float(g[i]), float(w[i])] for i in idx],
        }
    return tensors


def report(out, loss, loss32, logit_error, tensors):
    worst = max(t["torch_f32_grad_error"] for t in tensors.values())
    print(f"wrote {out}: loss {loss:.7f} (PyTorch f32: {loss32:.7f}), PyTorch f32 logits within "
          f"{logit_error:.1e} of f64, gradients within {worst:.1e}")


def fixtures(out):
    x, y = d2l.load_split("test")
    raw, labels = x[IMAGES], y[IMAGES]
    images = d2l.to_tensor(raw, RESIZE)          # d2l's Resize + ToTensor (PIL)
    resized_u8 = (images * 255).round().to(torch.uint8).numpy()

    def fresh():
        net = d2l.alexnet(RESIZE)
        net.load_state_dict(formula_weights(net), strict=True)
        return net

    # The reference is PyTorch in float64 on the same f32 weights and pixels: the exact answer
    # to about 1e-15. PyTorch's own float32 run is kept for its distance from that answer.
    logits, loss, grads, after = step(fresh(), images, labels, torch.float64)
    logits32, loss32, grads32, _ = step(fresh(), images, labels, torch.float32)

    tensors = tensor_summaries(grads, grads32, after)

    kept = torch.nn.functional.dropout(torch.ones(200_000), p=0.5, training=True)
    survivors = kept[kept != 0].unique().tolist()
    fixture = {
        "about": "reference/pytorch/parity.py fixtures: d2l's network (d2l_alexnet.py) with "
                 "formula weights, in float64; regenerate with that script",
        "torch": torch.__version__,
        "resize": RESIZE,
        "lr": LR,
        "test_indices": IMAGES,
        "pixels": [img.flatten().tolist() for img in raw],
        "labels": labels.tolist(),
        "resized_crc32": [zlib.crc32(img.tobytes()) for img in resized_u8],
        "logits": logits.tolist(),
        "loss": loss,
        "torch_f32_logit_error": relative(logits32, logits),
        "torch_f32_loss": loss32,
        "tensors": tensors,
        "dropout": {
            "p": 0.5,
            "survivor_values": survivors,
            "zero_fraction": float((kept == 0).float().mean()),
            "eval_is_identity": bool(torch.equal(
                torch.nn.functional.dropout(torch.ones(1000), p=0.5, training=False),
                torch.ones(1000))),
        },
    }
    with open(out, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    report(out, loss, loss32, fixture["torch_f32_logit_error"], tensors)


# tests/fixtures/photos: lossless photos for the network's parity, JPEGs for the decoders'.
PHOTOS = os.path.join(FIXTURES, "photos")
PNG_PHOTOS = ["chelsea.png", "camera.png"]
JPEG_PHOTOS = ["china.jpg", "flower.jpg", "camera.jpg"]
# Arbitrary ImageNet classes for the loss: tabby cat, and a class far from the photo.
PNG_LABELS = [281, 999]


def imagenet_inputs(names):
    """torchvision's evaluation pipeline as a user runs it: PIL decodes and converts to RGB,
    then the weights' own transform preset (Resize(256), CenterCrop(224), normalisation)."""
    from PIL import Image
    from torchvision.models import AlexNet_Weights
    transform = AlexNet_Weights.IMAGENET1K_V1.transforms()
    return torch.stack([transform(Image.open(os.path.join(PHOTOS, n)).convert("RGB"))
                        for n in names])


def imagenet_fixtures(out):
    import torchvision

    def fresh():
        net = torchvision.models.alexnet()
        net.load_state_dict(formula_weights(net), strict=True)
        return net

    images, labels = imagenet_inputs(PNG_PHOTOS), np.array(PNG_LABELS)
    logits, loss, grads, after = step(fresh(), images, labels, torch.float64)
    logits32, loss32, grads32, _ = step(fresh(), images, labels, torch.float32)
    tensors = tensor_summaries(grads, grads32, after)

    net = fresh().eval()
    with torch.inference_mode():
        jpeg_logits = net(imagenet_inputs(JPEG_PHOTOS))
    fixture = {
        "about": "reference/pytorch/parity.py imagenet: torchvision's alexnet() with formula "
                 "weights on tests/fixtures/photos through torchvision's evaluation transform; "
                 "regenerate with that script",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "lr": LR,
        "photos": PNG_PHOTOS,
        "labels": PNG_LABELS,
        "logits": logits.tolist(),
        "loss": loss,
        "torch_f32_logit_error": relative(logits32, logits),
        "torch_f32_loss": loss32,
        "tensors": tensors,
        "jpeg": [{"photo": name, "logits": row.tolist(),
                  "top5": row.topk(5).indices.tolist()}
                 for name, row in zip(JPEG_PHOTOS, jpeg_logits)],
    }
    with open(out, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    report(out, loss, loss32, fixture["torch_f32_logit_error"], tensors)


def plus_plus_weights(maps, grads):
    """pytorch-grad-cam's GradCAMPlusPlus.get_cam_weights: Grad-CAM++'s alpha (equation 19 of
    Chattopadhay et al. 2018) times the positive gradients, summed over the grid."""
    square = grads ** 2
    cube = square * grads
    sums = maps.sum(dim=(2, 3), keepdim=True)
    alpha = square / (2 * square + sums * cube + 0.000001)
    alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
    return (torch.clamp(grads, min=0) * alpha).sum(dim=(2, 3), keepdim=True)


def grad_cam(net, layer, images, classes, dtype=torch.float64, plus_plus=False):
    """pytorch-grad-cam's GradCAM (or GradCAMPlusPlus) with ClassifierOutputTarget(class) per
    image: the layer's output A and the class score's gradient dA through hooks; the map is
    relu(sum_c w_c * A_c), w_c = mean(dA_c) (or Grad-CAM++'s weights), scaled by
    (x - min) / (1e-7 + max - min). `classes[i]` None takes the image's top class. Returns
    (classes, raw maps, scaled maps) in float64."""
    saved = {}

    def keep(_module, _inputs, output):
        saved["maps"] = output
        output.register_hook(lambda grad: saved.__setitem__("grad", grad))

    handle = layer.register_forward_hook(keep)
    net = net.to(dtype).eval()
    logits = net(images.to(dtype))
    handle.remove()
    chosen = [int(logits[i].argmax()) if c is None else c for i, c in enumerate(classes)]
    score = sum(logits[i, c] for i, c in enumerate(chosen))
    score.backward()
    if plus_plus:
        weights = plus_plus_weights(saved["maps"], saved["grad"])
    else:
        weights = saved["grad"].mean(dim=(2, 3), keepdim=True)
    raw = torch.relu((weights * saved["maps"]).sum(dim=1)).detach()
    flat = raw.flatten(1)
    low = flat.min(dim=1).values[:, None, None]
    scaled = raw - low
    scaled = scaled / (1e-7 + scaled.flatten(1).max(dim=1).values[:, None, None])
    return chosen, raw.double(), scaled.double()


def gradcam_fixtures(out):
    import torchvision

    d2l_net = d2l.alexnet(RESIZE)
    d2l_net.load_state_dict(formula_weights(d2l_net), strict=True)
    x, y = d2l.load_split("test")
    d2l_images = d2l.to_tensor(x[IMAGES], RESIZE)
    d2l_labels = [int(v) for v in y[IMAGES]]
    imagenet_net = torchvision.models.alexnet()
    imagenet_net.load_state_dict(formula_weights(imagenet_net), strict=True)
    photos = imagenet_inputs(PNG_PHOTOS)
    fixture = {
        "about": "reference/pytorch/parity.py gradcam: Grad-CAM and Grad-CAM++ (plus_plus) "
                 "through hooks on the last convolution's ReLU, formula weights, float64; "
                 "regenerate with that script",
        "torch": torch.__version__,
    }
    cases = [("d2l", d2l_net, d2l_net[11], d2l_images, d2l_labels),
             ("imagenet", imagenet_net, imagenet_net.features[11], photos, PNG_LABELS)]
    for name, net, layer, images, labels in cases:
        entry = {}
        for target, classes in [("top", [None] * len(labels)), ("label", labels)]:
            net.zero_grad()
            chosen, raw, scaled = grad_cam(net, layer, images, classes)
            net.zero_grad()
            chosen32, _, scaled32 = grad_cam(net, layer, images, chosen, torch.float32)
            assert chosen32 == chosen
            errors = (scaled32 - scaled).flatten(1).abs().max(dim=1).values
            entry[target] = {"classes": chosen, "raw": raw.tolist(), "scaled": scaled.tolist(),
                             "torch_f32_error": errors.tolist()}
            net.zero_grad()
            _, _, plus = grad_cam(net, layer, images, chosen, plus_plus=True)
            net.zero_grad()
            _, _, plus32 = grad_cam(net, layer, images, chosen, torch.float32, plus_plus=True)
            plus_errors = (plus32 - plus).flatten(1).abs().max(dim=1).values
            entry[target]["plus_plus"] = {"scaled": plus.tolist(),
                                          "torch_f32_error": plus_errors.tolist()}
            print(f"{name} {target} Grad-CAM++: PyTorch f32 within "
                  f"{float(plus_errors.max()):.1e}")
            nonzero = float((raw > 0).double().mean())
            print(f"{name} {target}: classes {chosen}, grid {list(raw.shape[1:])}, "
                  f"{100 * nonzero:.0f}% of cells above zero, PyTorch f32 within "
                  f"{float(errors.max()):.1e}")
        fixture[name] = entry
    with open(out, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {out}")


def pickles(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    other = {"0.weight": torch.ones(2, 3), "0.bias": torch.zeros(2)}
    torch.save(other, os.path.join(out_dir, "other_network.pt"))
    torch.save({"epoch": 3, "model_state_dict": other, "optimizer_state_dict": {}},
               os.path.join(out_dir, "checkpoint.pt"))
    torch.save([1, 2, 3], os.path.join(out_dir, "list.pt"))
    print(f"wrote {out_dir}")


def train(a):
    from safetensors.torch import save_file
    torch.set_num_threads(a.threads)
    images, labels = d2l.load_split("train", a.limit_train)
    shuffle = torch.Generator().manual_seed(a.seed)
    batches = d2l.Batches(images, labels, a.batch, a.resize, True, shuffle)
    net = d2l.build(a.resize, a.seed)
    d2l.train_ch6(net, batches, None, a.epochs, a.lr)
    save_file(net.state_dict(), a.out)
    print(f"wrote {a.out}")


def evaluate(a):
    from safetensors.torch import load_file
    torch.set_num_threads(a.threads)
    net = d2l.alexnet(a.resize)
    net.load_state_dict(load_file(a.weights), strict=True)
    images, labels = d2l.load_split("test")
    acc = d2l.test_accuracy(net, d2l.Batches(images, labels, 256, a.resize))
    print(json.dumps({"weights": a.weights, "resize": a.resize, "images": len(labels),
                      "accuracy": acc}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fixtures")
    f.add_argument("--out", default=os.path.join(FIXTURES, "pytorch_parity.json"))
    i = sub.add_parser("imagenet")
    i.add_argument("--out", default=os.path.join(FIXTURES, "torchvision_parity.json"))
    k = sub.add_parser("pickles")
    k.add_argument("--out-dir", default=os.path.join(FIXTURES, "torch"))
    g = sub.add_parser("gradcam")
    g.add_argument("--out", default=os.path.join(FIXTURES, "gradcam.json"))
    t = sub.add_parser("train")
    t.add_argument("--resize", type=int, required=True)
    t.add_argument("--epochs", type=int, default=1)
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=0.01)
    t.add_argument("--limit-train", type=int, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--out", required=True)
    e = sub.add_parser("eval")
    e.add_argument("--weights", required=True)
    e.add_argument("--resize", type=int, required=True)
    e.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(getattr(a, "threads", 2))
    {"fixtures": lambda: fixtures(a.out), "train": lambda: train(a),
     "eval": lambda: evaluate(a), "imagenet": lambda: imagenet_fixtures(a.out),
     "pickles": lambda: pickles(a.out_dir), "gradcam": lambda: gradcam_fixtures(a.out)}[a.command]()


if __name__ == "__main__":
    main()
