"""Baseline for the language-modelling task.

Fits a character bigram model (the next character given the previous one,
with add-one smoothing) on train.txt, reports its cross-entropy in bits per
character on the last 10% of train.txt, then refits on all of it and saves
the table to model.npz, which predict.py loads for scoring.
"""
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def encode(text, alphabet):
    index = {c: i for i, c in enumerate(alphabet)}
    return np.array([index[c] for c in text], dtype=np.int64)


def fit(ids, vocab):
    counts = np.ones((vocab, vocab))  # add-one smoothing
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
    return counts / counts.sum(axis=1, keepdims=True)


def bits_per_char(table, ids):
    return float(-np.mean(np.log2(table[ids[:-1], ids[1:]])))


def main():
    with open(os.path.join(HERE, "alphabet.json")) as f:
        alphabet = json.load(f)
    with open(os.path.join(HERE, "train.txt"), encoding="ascii", newline="") as f:
        ids = encode(f.read(), alphabet)
    split = int(0.9 * len(ids))
    table = fit(ids[:split], len(alphabet))
    print(f"validation: {bits_per_char(table, ids[split:]):.4f} bits per character")
    table = fit(ids, len(alphabet))
    np.savez(os.path.join(HERE, "model.npz"), table=table)
    print("saved model.npz")


if __name__ == "__main__":
    main()
