"""Checks an ONNX model written by `alexnet export --format onnx` with ONNX's own tools.

1. `onnx.checker.check_model(full_check=True)`: the file is valid ONNX, shapes inferred.
2. ONNX Runtime runs it on image files, preprocessed with Pillow and NumPy exactly as the
   model's `alexnet.preprocess` metadata says (what any caller of the model would do), at
   batch 1 (one call per image) and at the batch of all images together; the logits are
   compared with `alexnet infer --json --logits` on the same files (largest difference relative
   to the largest logit of the image).
3. With --triton DIR: the model's config.pbtxt parses as Triton's ModelConfig (tritonclient's
   own protobuf), and its input and output names, types and dims match the model.

Prints one JSON object of figures; exits 1 with one line when a check fails.

    python check_onnx.py model.onnx --infer infer.json IMAGE... [--triton DIR/NAME] [--tolerance 1e-4]
"""

import argparse
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image


def preprocess(path, spec):
    """The network input for one image file, as the model's metadata describes it."""
    image = Image.open(path).convert(spec["mode"])
    width, height = image.size
    short, target = min(width, height), spec["resize_shorter_to"]
    # The longer side in proportion, truncated, as torchvision's Resize computes it.
    if width <= height:
        size = (target, int(target * height / width))
    else:
        size = (int(target * width / height), target)
    image = image.resize(size, Image.BILINEAR)
    crop = spec["center_crop"]
    left = int(round((size[0] - crop) / 2.0))
    top = int(round((size[1] - crop) / 2.0))
    image = image.crop((left, top, left + crop, top + crop))
    values = np.asarray(image, dtype=np.float32) * np.float32(spec["scale"])
    values = values.reshape(crop, crop, -1).transpose(2, 0, 1)
    if spec["mean"] is not None:
        mean = np.asarray(spec["mean"], dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(spec["std"], dtype=np.float32).reshape(-1, 1, 1)
        values = (values - mean) / std
    return values


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def relative_difference(ours, theirs):
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    return float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-12))


def check_triton(folder, model):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    with open(f"{folder}/config.pbtxt") as f:
        config = text_format.Parse(f.read(), model_config_pb2.ModelConfig())
    graph = model.graph
    batch_in_dims = config.max_batch_size == 0

    def dims(value):
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]
        return shape if batch_in_dims else shape[1:]

    for side, ours, theirs in [("input", config.input, graph.input), ("output", config.output, graph.output)]:
        if [t.name for t in ours] != [t.name for t in theirs]:
            fail(f"config.pbtxt's {side} names {[t.name for t in ours]} are not the model's")
        for t, v in zip(ours, theirs):
            if list(t.dims) != dims(v):
                fail(f"config.pbtxt's {side} {t.name} has dims {list(t.dims)}, the model {dims(v)}")
            if t.data_type != model_config_pb2.TYPE_FP32:
                fail(f"config.pbtxt's {side} {t.name} is not TYPE_FP32")
    if config.platform != "onnxruntime_onnx":
        fail(f"config.pbtxt's platform is {config.platform}")
    return {
        "name": config.name,
        "max_batch_size": config.max_batch_size,
        "dynamic_batching": config.HasField("dynamic_batching"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--infer", required=True, help="`alexnet infer --json --logits` output")
    parser.add_argument("--triton", help="the model's folder in a Triton repository")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()

    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    spec = json.loads(meta["alexnet.preprocess"])
    classes = json.loads(meta["alexnet.classes"])

    with open(args.infer) as f:
        text = f.read()
    try:
        results = json.loads(text)
        results = results if isinstance(results, list) else results.get("results", results)
    except json.JSONDecodeError:
        results = [json.loads(line) for line in text.splitlines() if line.strip()]
    logits_by_input = {r["input"]: r["logits"] for r in results}

    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    batch = np.stack([preprocess(p, spec) for p in args.images])
    ours = [logits_by_input[p] for p in args.images]
    if len(ours[0]) != len(classes):
        fail(f"infer gave {len(ours[0])} logits, the model has {len(classes)} classes")
    one_by_one = [session.run(None, {name: batch[i : i + 1]})[0][0] for i in range(len(batch))]
    together = session.run(None, {name: batch})[0]
    figures = {
        "images": len(args.images),
        "opset": model.opset_import[0].version,
        "ir_version": model.ir_version,
        "onnxruntime": ort.__version__,
        "batch_1": max(relative_difference(t, o) for t, o in zip(ours, one_by_one)),
        f"batch_{len(batch)}": max(relative_difference(t, o) for t, o in zip(ours, together)),
        "same_top_class": all(int(np.argmax(t)) == int(np.argmax(o)) for t, o in zip(ours, together)),
    }
    if args.triton:
        figures["triton"] = check_triton(args.triton, model)
    print(json.dumps(figures))
    worst = max(figures["batch_1"], figures[f"batch_{len(batch)}"])
    if worst > args.tolerance:
        fail(f"ONNX Runtime's logits differ from infer's by {worst:.2e} of the largest (> {args.tolerance})")


if __name__ == "__main__":
    main()
