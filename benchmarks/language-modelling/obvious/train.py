"""Character n-gram model for the language-modelling task.

Fits an n-gram model of order ORDER (the next character given the previous
ORDER-1) with interpolated absolute discounting (see ngram.py) on train.txt,
reports its cross-entropy in bits per character on a sample of the last 10%
of train.txt, then refits on all of it and saves the counts to model.npz,
which predict.py loads for scoring.
"""
import json
import os

import numpy as np

from ngram import NGram, windows

HERE = os.path.dirname(os.path.abspath(__file__))
ORDER = 5
DISCOUNT = 0.9
KNESER_NEY = False


def main():
    with open(os.path.join(HERE, "alphabet.json")) as f:
        alphabet = json.load(f)
    index = {c: i for i, c in enumerate(alphabet)}
    with open(os.path.join(HERE, "train.txt"), encoding="ascii", newline="") as f:
        ids = np.array([index[c] for c in f.read()], dtype=np.int64)
    split = int(0.9 * len(ids))
    model = NGram(len(alphabet), ORDER, DISCOUNT, KNESER_NEY).fit(ids[:split])
    positions = np.arange(split, len(ids), 13)[:40000]
    hist, length = windows(ids, positions, ORDER - 1)
    p = model.dist(hist, length)
    bits = -np.log2(p[np.arange(len(positions)), ids[positions]]).mean()
    print(f"validation: {bits:.4f} bits per character")
    model = NGram(len(alphabet), ORDER, DISCOUNT, KNESER_NEY).fit(ids)
    np.savez(os.path.join(HERE, "model.npz"), **model.state())
    print("saved model.npz")


if __name__ == "__main__":
    main()
