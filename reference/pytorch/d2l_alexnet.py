"""The d2l.ai AlexNet chapter in PyTorch: the pieces the reference scripts share.

What `d2l.load_data_fashion_mnist(128, resize=224)` and `d2l.train_ch6(net, ..., lr=0.01)`
do, without the d2l package:

* data: the four Fashion-MNIST IDX files (gzip or raw), each 28x28 image resized as
  torchvision's `Resize` does it on a PIL image (bilinear, rounded to 8 bits), then scaled to
  [0, 1] as `ToTensor` does; training batches shuffled every epoch, the last partial batch kept;
* the network: the chapter's `nn.Sequential`, Xavier-uniform weights on every Conv2d and
  Linear layer (biases keep PyTorch's default init);
* training: SGD, mean cross-entropy, d2l's example-weighted loss and accuracy, and d2l's timer,
  which counts only each batch's compute (not loading).
"""
import gzip
import os
import struct
import time

import numpy as np
import torch
from torch import nn

DATA_DIR = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
IDX_NAMES = {"train": "train", "test": "t10k"}


def read_idx(path):
    """An unsigned-byte IDX file (gzip-compressed or raw) as a numpy array of its shape."""
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path += ".gz"
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        raw = f.read()
    zero, kind, dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or kind != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    shape = struct.unpack(f">{dims}I", raw[4:4 + 4 * dims])
    values = np.frombuffer(raw, np.uint8, offset=4 + 4 * dims)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{path} holds {values.size} bytes of values, its header says {shape}")
    return values.reshape(shape)


def load_split(split, limit=None, data_dir=DATA_DIR):
    """The first `limit` (default: all) images (N x 28 x 28, uint8) and labels (int64)."""
    prefix = os.path.join(data_dir, IDX_NAMES[split])
    images = read_idx(f"{prefix}-images-idx3-ubyte")[:limit]
    labels = read_idx(f"{prefix}-labels-idx1-ubyte")[:limit]
    return images, labels.astype(np.int64)


def to_tensor(images, size):
    """N x 28 x 28 uint8 images as N x 1 x size x size floats in [0, 1]: torchvision's
    `Resize(size)` (PIL bilinear, 8-bit output) then `ToTensor()`."""
    from PIL import Image

    if size == images.shape[-1]:
        resized = np.ascontiguousarray(images)
    else:
        resized = np.stack([
            np.asarray(Image.fromarray(image, mode="L").resize((size, size), Image.BILINEAR))
            for image in images
        ])
    return torch.from_numpy(resized).unsqueeze(1).float().div_(255)


class Batches:
    """`DataLoader(dataset, batch_size, shuffle)` with the resize applied per batch: a fresh
    permutation from `generator` each epoch when shuffling, the last partial batch kept."""

    def __init__(self, images, labels, batch_size, size, shuffle=False, generator=None):
        self.images, self.labels = images, torch.from_numpy(labels)
        self.batch_size, self.size = batch_size, size
        self.shuffle, self.generator = shuffle, generator

    def __len__(self):
        return -(-len(self.images) // self.batch_size)

    def __iter__(self):
        n = len(self.images)
        order = torch.randperm(n, generator=self.generator).numpy() if self.shuffle else np.arange(n)
        for start in range(0, n, self.batch_size):
            picked = order[start:start + self.batch_size]
            yield to_tensor(self.images[picked], self.size), self.labels[picked]


def flatten_width(size):
    """Inputs of the first Linear layer: 6400 at 224 px."""
    side = (size + 2 - 11) // 4 + 1           # conv 11x11, stride 4, padding 1
    for _ in range(3):                          # three 3x3/2 max-pools; the convs between keep the side
        side = (side - 3) // 2 + 1
    return 256 * side * side


def alexnet(size=224):
    """The chapter's network, for one-channel `size` x `size` images and 10 classes."""
    return nn.Sequential(
        nn.Conv2d(1, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
        nn.Linear(flatten_width(size), 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 10))


def xavier_init(module):
    """train_ch6's `init_weights`: Xavier-uniform on Linear and Conv2d weights only."""
    if type(module) in (nn.Linear, nn.Conv2d):
        nn.init.xavier_uniform_(module.weight)


def build(size=224, seed=0):
    """The network with d2l's initialisation, its random draws seeded by `seed`."""
    torch.manual_seed(seed)
    net = alexnet(size)
    net.apply(xavier_init)
    return net


def correct(logits, labels):
    """How many predictions are right (d2l.accuracy)."""
    return float((logits.argmax(dim=1) == labels).sum())


def test_accuracy(net, batches, device="cpu"):
    """d2l.evaluate_accuracy_gpu: evaluation mode, no gradients."""
    net.eval()
    hits, seen = 0.0, 0
    with torch.no_grad():
        for images, labels in batches:
            images, labels = images.to(device), labels.to(device)
            hits += correct(net(images), labels)
            seen += labels.numel()
    return hits / max(seen, 1)


def train_ch6(net, train_batches, test_batches, epochs, lr, device="cpu", log_every=0):
    """d2l's training loop. Prints one line per epoch; returns the last epoch's
    (loss, train acc, test acc) and d2l's examples/sec (compute time only)."""
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    timed_seconds, timed_examples = 0.0, 0
    net.to(device)
    for epoch in range(1, epochs + 1):
        loss_sum, hits, seen = 0.0, 0.0, 0
        net.train()
        for i, (images, labels) in enumerate(train_batches, 1):
            start = time.perf_counter()
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            logits = net(images)
            loss = loss_fn(logits, labels)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                loss_sum += float(loss) * labels.numel()
                hits += correct(logits, labels)
                seen += labels.numel()
            timed_seconds += time.perf_counter() - start
            timed_examples += labels.numel()
            if log_every and i % log_every == 0:
                print(f"  epoch {epoch}, batch {i}/{len(train_batches)}: loss "
                      f"{loss_sum / seen:.4f}, train acc {hits / seen:.4f}", flush=True)
        test_acc = test_accuracy(net, test_batches, device) if test_batches else float("nan")
        print(f"epoch {epoch}: loss {loss_sum / seen:.3f}, train acc {hits / seen:.3f}, "
              f"test acc {test_acc:.3f}, {timed_examples / timed_seconds:.1f} examples/sec",
              flush=True)
    return (loss_sum / seen, hits / seen, test_acc), timed_examples / timed_seconds


def cpu_model():
    """The CPU's name, family and model: hosts of one machine type differ in speed."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return "unknown CPU"
    fields = dict(line.split(":", 1) for line in info.splitlines()[:30] if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return (f"{fields.get('model name', 'unknown CPU')} (family {fields.get('cpu family', '?')}, "
            f"model {fields.get('model', '?')})")


def load_average():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "unknown"


if __name__ == "__main__":
    print(__doc__.strip())
    print("\nA module for the scripts beside it (train_ref.py, bench_ref.py, layers_ref.py, parity.py).")
