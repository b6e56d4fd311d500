"""Row-normalised Gaussian (RBF) kernel: the transition matrix of a diffusion map.

compute(x) takes n points in d dimensions (x has shape (n, d), dtype float64)
and returns the (n, n) float64 matrix P with

    K[i, j] = exp(-||x[i] - x[j]||^2 / d)       (RBF kernel, gamma = 1/d)
    P[i, j] = K[i, j] / sum_k K[i, k]           (each row sums to 1)

This straightforward implementation uses pure-Python loops and is slow.
"""
import math
import time

import numpy as np


def compute(x: np.ndarray) -> np.ndarray:
    n, d = x.shape
    gamma = 1.0 / d
    out = np.zeros((n, n), dtype=np.float64)
    for i in range(n):
        row_sum = 0.0
        for j in range(n):
            sq_dist = 0.0
            for k in range(d):
                diff = x[i, k] - x[j, k]
                sq_dist += diff * diff
            value = math.exp(-gamma * sq_dist)
            out[i, j] = value
            row_sum += value
        for j in range(n):
            out[i, j] /= row_sum
    return out


if __name__ == "__main__":
    # Same shape and distribution as the scored input (the values differ).
    rng = np.random.default_rng(0)
    x = rng.standard_normal((450, 16))
    start = time.perf_counter()
    result = compute(x)
    elapsed = time.perf_counter() - start
    print(f"output shape {result.shape}, first values {result[0, :3]}")
    print(f"compute() took {elapsed:.3f} s")
