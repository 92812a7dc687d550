"""`cargo xtask bench serve-onnx`'s Python side.

export TRAIN.csv HOLDOUT.csv OUT: fits the model every server serves (a StandardScaler and an
    MLPClassifier of the quickstart's shape: 64 features, one hidden layer of 64 ReLU units, ten
    classes), exports it with skl2onnx (no ZipMap) to OUT/model.onnx, and writes the request
    bodies: OUT/rows.csv (the holdout's feature rows, no header), OUT/instances-B.json
    ({"instances": [...]}, what mlops serve and the FastAPI app take) and OUT/v2-B.json (an Open
    Inference Protocol request, what MLServer takes) for B in 1 and 256.
inprocess MODEL ROWS SECONDS BATCH...: onnxruntime's rows per second on batches of the rows, with
    one intra-op thread and with its default; one JSON line per batch size and setting.
"""

import csv
import json
import os
import sys
import time

import numpy as np


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    features = ["pixel_%d" % i for i in range(64)]
    x = np.array([[float(r[c]) for c in features] for r in rows], dtype=np.float32)
    y = np.array([int(r["digit"]) for r in rows])
    return x, y


def export(train, holdout, out):
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = read(train)
    model = make_pipeline(
        StandardScaler(),
        MLPClassifier(hidden_layer_sizes=(64,), activation="relu", max_iter=500, random_state=0),
    ).fit(x, y)
    onx = to_onnx(model, x[:1], options={"zipmap": False})
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "model.onnx"), "wb") as f:
        f.write(onx.SerializeToString())
    rows, _ = read(holdout)
    with open(os.path.join(out, "rows.csv"), "w") as f:
        for r in rows:
            f.write(",".join(repr(float(v)) for v in r) + "\n")
    for batch in (1, 256):
        picked = np.resize(rows, (batch, rows.shape[1]))
        with open(os.path.join(out, "instances-%d.json" % batch), "w") as f:
            json.dump({"instances": picked.tolist()}, f)
        v2 = {
            "inputs": [
                {
                    "name": "X",
                    "shape": list(picked.shape),
                    "datatype": "FP32",
                    "data": picked.ravel().tolist(),
                }
            ]
        }
        with open(os.path.join(out, "v2-%d.json" % batch), "w") as f:
            json.dump(v2, f)


def inprocess(model, rows, seconds, batches):
    import onnxruntime as ort

    values = np.loadtxt(rows, delimiter=",", dtype=np.float32)
    for threads in (1, 0):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for batch in batches:
            count = len(values) - batch + 1
            session.run(None, {name: values[:batch]})
            done, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                start = (done * batch) % count
                session.run(None, {name: values[start : start + batch]})
                done += 1
            rate = done * batch / (time.perf_counter() - started)
            print(json.dumps({"batch": batch, "threads": threads, "rows_per_second": rate}))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "export":
        export(*args)
    elif command == "inprocess":
        inprocess(args[0], args[1], float(args[2]), [int(b) for b in args[3:]])
    else:
        sys.exit("unknown command " + command)
