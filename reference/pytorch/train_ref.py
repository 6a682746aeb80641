#!/usr/bin/env python3
"""d2l's AlexNet protocol in PyTorch: the chapter's data, network and train_ch6 loop.

Defaults are the chapter's: 10 epochs on all 60,000 training images at 224 px, batch 128,
SGD lr 0.01, tested on all 10,000 test images after each epoch. It prints d2l's lines:

    epoch 1: loss 1.317, train acc 0.514, test acc 0.730, 9916.9 examples/sec
    ...
    loss 0.327, train acc 0.880, test acc 0.883
    2386.2 examples/sec on cuda

examples/sec is d2l's timer: the compute of each batch, not the loading.
"""
import argparse

import torch

import d2l_alexnet as d2l


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=128, help="images per SGD step")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--resize", type=int, default=224, help="side the 28x28 images are resized to")
    p.add_argument("--limit-train", type=int, metavar="N", help="train on the first N images")
    p.add_argument("--limit-test", type=int, metavar="N", help="test on the first N images")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights and the shuffles")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--data-dir", default=d2l.DATA_DIR,
                   help="the Fashion-MNIST IDX files (default: $FASHION_MNIST_DIR, else %(default)s)")
    p.add_argument("--log-every", type=int, default=0, metavar="N",
                   help="a progress line every N batches")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__} on {a.device}; CPU: {d2l.cpu_model()}, {a.threads} threads; "
          f"load average {d2l.load_average()}", flush=True)
    train_images, train_labels = d2l.load_split("train", a.limit_train, a.data_dir)
    test_images, test_labels = d2l.load_split("test", a.limit_test, a.data_dir)
    shuffle = torch.Generator().manual_seed(a.seed)
    train_batches = d2l.Batches(train_images, train_labels, a.batch, a.resize, True, shuffle)
    test_batches = d2l.Batches(test_images, test_labels, a.batch, a.resize)
    print(f"{len(train_labels)} training and {len(test_labels)} test images at {a.resize} px, "
          f"batch {a.batch}, lr {a.lr}, {a.epochs} epochs", flush=True)

    net = d2l.build(a.resize, a.seed)
    (loss, train_acc, test_acc), rate = d2l.train_ch6(
        net, train_batches, test_batches, a.epochs, a.lr, a.device, a.log_every)
    print(f"loss {loss:.3f}, train acc {train_acc:.3f}, test acc {test_acc:.3f}")
    print(f"{rate:.1f} examples/sec on {a.device}")


if __name__ == "__main__":
    main()
