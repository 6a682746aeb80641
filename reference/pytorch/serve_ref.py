#!/usr/bin/env python3
"""d2l's AlexNet behind HTTP in PyTorch: the counterpart of `alexnet serve` for load figures.

The server a PyTorch user would write first: FastAPI on uvicorn, one process, one forward pass
per request (no batching). `POST /v1/predict` takes an image as the raw request body, reads it
as `alexnet infer` reads images for a Fashion-MNIST run (grey, padded to a square with the
background, shrunk to 28x28, then resized to --resize with PIL's bilinear filter and scaled to
[0, 1]) and answers the top classes as JSON. `GET /healthz` answers "ok".

Weights: a safetensors file in the chapter's layout (`alexnet export --format safetensors`
writes one), or d2l's Xavier-uniform initialisation when none is given: the timing is the same.

    pip install -r reference/pytorch/requirements.txt
    python3 reference/pytorch/serve_ref.py --resize 224 --port 8090
"""
import argparse
import io

import numpy as np
import torch
from PIL import Image, ImageOps

import d2l_alexnet as d2l

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle boot"]


def square(image):
    """`image` centred on a square canvas of its darkest border value (as `alexnet infer`)."""
    w, h = image.size
    if w == h:
        return image
    pixels = np.asarray(image)
    border = int(min(pixels[0].min(), pixels[-1].min(), pixels[:, 0].min(), pixels[:, -1].min()))
    side = max(w, h)
    canvas = Image.new("L", (side, side), border)
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas


def read(body, size, invert):
    """The network's input (1 x 1 x size x size) for an encoded image."""
    image = Image.open(io.BytesIO(body))
    image.load()
    grey = image.convert("L")
    if invert:
        grey = ImageOps.invert(grey)
    small = square(grey)
    if small.size != (28, 28):
        small = small.resize((28, 28), Image.BILINEAR)
    return d2l.to_tensor(np.asarray(small)[None], size)


def app(net, size):
    from fastapi import FastAPI, HTTPException, Request

    api = FastAPI()

    @api.get("/healthz")
    def healthz():
        return "ok"

    @api.post("/v1/predict")
    async def predict(request: Request, top: int = 3, invert: bool = False):
        body = await request.body()
        try:
            x = read(body, size, invert)
        except Exception as err:  # PIL raises several kinds for bad bytes
            raise HTTPException(400, f"the body is not a readable image ({err})")
        with torch.no_grad():
            probabilities = torch.softmax(net(x), dim=1)[0]
        values, indices = probabilities.topk(min(top, len(CLASSES)))
        return {"top": [{"class": int(i), "label": CLASSES[int(i)], "probability": float(v)}
                        for v, i in zip(values, indices)]}

    return api


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--resize", type=int, default=224, help="the network's input side")
    p.add_argument("--weights", help="a safetensors state dict in the chapter's layout")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    net = d2l.build(a.resize)
    if a.weights:
        from safetensors.torch import load_file
        net.load_state_dict(load_file(a.weights), strict=True)
    net.eval()
    import uvicorn
    uvicorn.run(app(net, a.resize), host=a.host, port=a.port, log_level="warning")


if __name__ == "__main__":
    main()
