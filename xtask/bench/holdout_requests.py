"""The competitor of `cargo xtask bench holdout`: what a typical pytest integration test does.

Reads the holdout CSV with the csv module, posts batches of rows to the service's /invocations
with a requests.Session, one after the other, and scores the answers. Prints one JSON line:
rows, seconds, accuracy.

MODE `json`: the batches as `{"columns": [...], "data": [[...], ...]}` with `json=` (what such a
test usually writes), JSON answers. MODE `csv`: the same CSV bodies `mlops holdout` sends (a
header, then the rows' feature fields as the file has them), CSV answers (one label per line).

usage: holdout_requests.py URL CSV BATCH MAX_ROWS [csv|json]
"""

import csv
import json
import sys
import time

import requests


def main() -> None:
    url, path = sys.argv[1], sys.argv[2]
    batch, limit = int(sys.argv[3]), int(sys.argv[4])
    mode = sys.argv[5] if len(sys.argv) > 5 else "csv"
    session = requests.Session()
    rows = correct = 0
    started = time.perf_counter()
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        label = header.index("digit")
        features = [c for i, c in enumerate(header) if i != label]
        head = ",".join(features) + "\n"
        data, truth = [], []

        def flush() -> int:
            if mode == "json":
                r = session.post(
                    url + "/invocations",
                    json={"columns": features, "data": data},
                    timeout=30,
                )
                r.raise_for_status()
                predictions = [p["label"] for p in r.json()["predictions"]]
            else:
                r = session.post(
                    url + "/invocations",
                    data=head + "".join(data),
                    headers={"Content-Type": "text/csv", "Accept": "text/csv"},
                    timeout=30,
                )
                r.raise_for_status()
                predictions = r.text.splitlines()
            return sum(p == t for p, t in zip(predictions, truth))

        for record in reader:
            values = [v for i, v in enumerate(record) if i != label]
            if mode == "json":
                data.append([float(v) for v in values])
            else:
                data.append(",".join(values) + "\n")
            truth.append(record[label])
            rows += 1
            if len(data) == batch:
                correct += flush()
                data, truth = [], []
            if rows >= limit:
                break
        if data:
            correct += flush()
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": rows, "seconds": seconds, "accuracy": correct / max(rows, 1)}))


if __name__ == "__main__":
    main()
