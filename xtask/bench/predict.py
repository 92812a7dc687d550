"""The Python side of `cargo xtask bench predict`: the batch scripts teams write by hand.

onnx MODEL.onnx INPUT.csv OUTPUT.csv CHUNK: pandas reads the input CSV CHUNK rows at a time,
    onnxruntime (default session options: all cores) scores each chunk, and pandas writes what
    `mlops predict` writes (the row number, the label, each class's probability) as CSV.
torch MODEL_DIR INPUT.csv OUTPUT.csv CHUNK: the same with PyTorch running the burn model's
    twin: the registered version's weights (model.safetensors, read with numpy) and
    standardisation (model.json) in an nn.Sequential of the same layers.

Each prints one JSON line: {"rows": N, "seconds": S} (the whole script after imports).
"""

import json
import struct
import sys
import time

import numpy as np
import pandas as pd


def scored(rows_before, label, probabilities, classes):
    frame = pd.DataFrame(probabilities, columns=["probability_%s" % c for c in classes])
    frame.insert(0, "label", [classes[i] for i in label])
    frame.insert(0, "row", np.arange(rows_before + 1, rows_before + 1 + len(label)))
    return frame


def run(input_csv, output_csv, chunk, features, score):
    started = time.time()
    rows = 0
    first = True
    for frame in pd.read_csv(input_csv, chunksize=chunk):
        x = frame[features].to_numpy(dtype=np.float32)
        out = score(rows, x)
        out.to_csv(output_csv, mode="w" if first else "a", header=first, index=False)
        first = False
        rows += len(frame)
    print(json.dumps({"rows": rows, "seconds": time.time() - started}))


def onnx(model, input_csv, output_csv, chunk):
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    width = session.get_inputs()[0].shape[1]
    features = ["pixel_%d" % i for i in range(width)]
    classes = None

    def score(before, x):
        nonlocal classes
        label, probabilities = session.run(None, {name: x})
        if classes is None:
            classes = [str(c) for c in range(probabilities.shape[1])]
        return scored(before, label, probabilities, classes)

    run(input_csv, output_csv, chunk, features, score)


def safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        tensors[name] = np.frombuffer(data[base + start : base + end], dtype="<f4").reshape(
            meta["shape"]
        )
    return tensors


def twin(model_dir, input_csv, output_csv, chunk):
    import torch

    bundle = json.load(open(model_dir + "/model.json"))
    weights = safetensors(model_dir + "/model.safetensors")
    arch = bundle["architecture"]
    layers = []
    for i in range(len(arch["hidden_layers"])):
        w, b = weights["dense.%d.weight" % i], weights["dense.%d.bias" % i]
        linear = torch.nn.Linear(w.shape[0], w.shape[1])
        linear.weight.data = torch.from_numpy(w.T.copy())
        linear.bias.data = torch.from_numpy(b.copy())
        layers += [linear, torch.nn.ReLU()]
    w, b = weights["output.weight"], weights["output.bias"]
    output = torch.nn.Linear(w.shape[0], w.shape[1])
    output.weight.data = torch.from_numpy(w.T.copy())
    output.bias.data = torch.from_numpy(b.copy())
    network = torch.nn.Sequential(*layers, output).eval()
    mean = np.array(bundle["standardizer"]["mean"], dtype=np.float32)
    std = np.array(bundle["standardizer"]["std"], dtype=np.float32)
    std[std == 0] = 1.0
    features = bundle["signature"]["features"]
    classes = bundle["signature"]["classes"]

    def score(before, x):
        with torch.inference_mode():
            z = torch.from_numpy((x - mean) / std)
            p = torch.softmax(network(z), dim=1).numpy()
        return scored(before, p.argmax(axis=1), p, classes)

    run(input_csv, output_csv, chunk, features, score)


if __name__ == "__main__":
    mode, model, input_csv, output_csv, chunk = sys.argv[1:6]
    {"onnx": onnx, "torch": twin}[mode](model, input_csv, output_csv, int(chunk))
