"""PyTorch's side of the `matmul_layouts` example (crates/mlops-train/examples): the same products,
layouts and timing (median of 300 after 20 warm-up products, 2 threads), the same table.

usage: matmul_torch.py
"""

import time

import torch

SHAPES = [(256, 512, 512), (512, 256, 512), (256, 64, 512), (64, 256, 512), (256, 512, 10)]


def main():
    torch.set_num_threads(2)
    print(f"{'m x k x n':>16} {'layout':>6} {'us':>10} {'GFLOP/s':>9}")
    for m, k, n in SHAPES:
        cases = [
            ("A B", torch.randn(m, k), torch.randn(k, n)),
            ("A^T B", torch.randn(k, m).t(), torch.randn(k, n)),
            ("A B^T", torch.randn(m, k), torch.randn(n, k).t()),
        ]
        for layout, lhs, rhs in cases:
            for _ in range(20):
                lhs @ rhs
            times = []
            for _ in range(300):
                started = time.perf_counter()
                lhs @ rhs
                times.append(time.perf_counter() - started)
            t = sorted(times)[len(times) // 2]
            print(f"{f'{m} x {k} x {n}':>16} {layout:>6} {t * 1e6:>10.1f} {2 * m * k * n / t / 1e9:>9.1f}")


if __name__ == "__main__":
    main()
