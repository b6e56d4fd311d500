"""The obvious first fix for numpy-speedup (hidden from agents): plain
vectorisation by broadcasting. It removes the Python loops but builds an
(n, n, d) array of differences, so it does d times the memory traffic of the
reference's Gram-matrix form.
"""
import time

import numpy as np


def compute(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[1]
    diff = x[:, None, :] - x[None, :, :]
    k = np.exp(-(diff * diff).sum(axis=2) / d)
    return k / k.sum(axis=1, keepdims=True)


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    x = rng.standard_normal((450, 16))
    start = time.perf_counter()
    result = compute(x)
    elapsed = time.perf_counter() - start
    print(f"output shape {result.shape}, first values {result[0, :3]}")
    print(f"compute() took {elapsed:.3f} s")
