"""The PyTorch side of `cargo xtask bench train`.

Trains the MLP that `mlops train` trains, the same way: features standardised with the training
split's mean and standard deviation, He-initialised linear layers with ReLU, cross-entropy, Adam
(PyTorch's defaults: epsilon 1e-8, where burn's is 1e-5), the rows shuffled every epoch, the
validation set scored after every epoch. Prints one JSON line: training samples per second (over
the epochs, validation included, as mlops reports it), the CPU time of the process over the same
epochs (all threads) and the final validation accuracy.

usage: train_torch.py TRAIN_CSV VALIDATION_CSV LABEL HIDDEN(comma-separated) BATCH LR EPOCHS SEED
"""

import csv
import json
import sys
import time

import torch


def read(path, label):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    features = [c for c in rows[0].keys() if c != label]
    x = torch.tensor([[float(r[c]) for c in features] for r in rows], dtype=torch.float32)
    y = torch.tensor([int(float(r[label])) for r in rows], dtype=torch.int64)
    return x, y


def main():
    train_csv, validation_csv, label, hidden, batch, lr, epochs, seed = sys.argv[1:9]
    hidden = [int(h) for h in hidden.split(",") if h]
    batch, lr, epochs, seed = int(batch), float(lr), int(epochs), int(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    x, y = read(train_csv, label)
    vx, vy = read(validation_csv, label)
    mean = x.mean(0)
    std = x.std(0, unbiased=False)
    std[std == 0] = 1.0
    x, vx = (x - mean) / std, (vx - mean) / std
    classes = int(max(y.max(), vy.max())) + 1

    layers, width = [], x.shape[1]
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, classes))
    model = torch.nn.Sequential(*layers)
    for m in model:
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            torch.nn.init.zeros_(m.bias)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()

    accuracy = 0.0
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], batch):
            index = order[i : i + batch]
            optimiser.zero_grad()
            loss = loss_fn(model(x[index]), y[index])
            loss.backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(vx).argmax(1) == vy).float().mean().item()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(
        json.dumps(
            {
                "samples_per_second": x.shape[0] * epochs / elapsed,
                "cpu_seconds": cpu,
                "accuracy": accuracy,
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
