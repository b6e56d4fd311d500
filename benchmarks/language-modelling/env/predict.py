"""The model the eval scores: load(folder) returns an object with

    start(n)         begin n independent texts, nothing seen yet;
    predict()        an (n, len(alphabet)) array: for each text, the
                     probability of every character of alphabet.json (in
                     that order) being its next character; rows sum to 1;
    observe(chars)   a string of n characters: the next character of each
                     text, in order.

The eval calls start(n), then predict() and observe() in turn. This one
serves the bigram table saved by train.py.
"""
import json
import os

import numpy as np


class Bigram:
    def __init__(self, table, alphabet):
        self.table = table
        self.index = {c: i for i, c in enumerate(alphabet)}
        # Before the first character: the overall character frequencies.
        self.first = table.mean(axis=0)
        self.first /= self.first.sum()
        self.last = None

    def start(self, n):
        self.last = None
        self.n = n

    def predict(self):
        if self.last is None:
            return np.tile(self.first, (self.n, 1))
        return self.table[self.last]

    def observe(self, chars):
        self.last = np.array([self.index[c] for c in chars])


def load(folder):
    with open(os.path.join(folder, "alphabet.json")) as f:
        alphabet = json.load(f)
    return Bigram(np.load(os.path.join(folder, "model.npz"))["table"], alphabet)
