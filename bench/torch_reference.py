#!/usr/bin/python3
"""PyTorch reference for bench_train: trains the same model with the same batch size and
thread count on Fashion-MNIST and prints one line `model=... examples_per_s=... peak_rss_mb=...`.

Usage: torch_reference.py MODEL STEPS BATCH THREADS [DATA_DIR]
MODEL: softmax | mlp | simple_cnn. Runs on CPU only.
"""
import gzip
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def build(name):
    if name == "softmax":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256),
                             nn.ReLU(), nn.Linear(256, 10))
    if name == "simple_cnn":
        return nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(3136, 1024), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1024, 10))
    raise SystemExit("unknown model " + name)


def main():
    model_name, steps, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    data_dir = sys.argv[5] if len(sys.argv) > 5 else "/usr/share/datasets/fashion-mnist"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    images = load_idx(data_dir + "/train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    labels = load_idx(data_dir + "/train-labels-idx1-ubyte.gz").astype(np.int64)
    x_all = torch.from_numpy(images).reshape(-1, 1, 28, 28)
    y_all = torch.from_numpy(labels)
    model = build(model_name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    n = x_all.shape[0]
    perm = torch.randperm(n)
    warm = 5
    t0 = None
    for step in range(steps + warm):
        if step == warm:
            t0 = time.perf_counter()
        idx = perm[(step * batch) % (n - batch):(step * batch) % (n - batch) + batch]
        x, y = x_all[idx], y_all[idx]
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("model=%s examples_per_s=%.1f peak_rss_mb=%.1f loss=%.4f" %
          (model_name, steps * batch / dt, rss, loss.item()))


if __name__ == "__main__":
    main()
