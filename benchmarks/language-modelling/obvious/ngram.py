"""A character n-gram model with interpolated absolute discounting.

The probability of the next character mixes the counts seen after the
last k characters, for k = ORDER-1 down to 0, each discounted by D and
backing off to the shorter context with the mass the discount freed.
Counts are kept as sorted integer keys (context * V + next character), so
the model is a few numpy arrays and every lookup is vectorised.
"""
import numpy as np


class NGram:
    def __init__(self, vocab, order, discount=0.75, kneser_ney=False):
        self.vocab, self.order, self.discount = vocab, order, discount
        self.kneser_ney = kneser_ney

    def fit(self, ids):
        v = self.vocab
        self.unigram = (np.bincount(ids, minlength=v) + 1.0) / (len(ids) + v)
        self.keys, self.counts, self.csum = [], [], []
        for m in range(1, self.order):
            ctx = np.zeros(len(ids) - m, dtype=np.int64)
            for j in range(m):
                ctx = ctx * v + ids[j:len(ids) - m + j]
            keys, counts = np.unique(ctx * v + ids[m:], return_counts=True)
            self.keys.append(keys)
            self.counts.append(counts.astype(np.float64))
        if self.kneser_ney:
            # Lower orders count how many different characters precede an
            # n-gram, not how often it occurs.
            for m in range(self.order - 2):
                longer = self.keys[m + 1] % v ** (m + 2)
                keys, counts = np.unique(longer, return_counts=True)
                self.keys[m], self.counts[m] = keys, counts.astype(np.float64)
        self.csum = [np.concatenate([[0.0], np.cumsum(c)]) for c in self.counts]
        return self

    def state(self):
        return {"unigram": self.unigram, "order": self.order, "discount": self.discount,
                "kneser_ney": self.kneser_ney,
                **{f"keys{m}": k for m, k in enumerate(self.keys)},
                **{f"counts{m}": c.astype(np.int32) for m, c in enumerate(self.counts)}}

    @classmethod
    def from_state(cls, vocab, s):
        model = cls(vocab, int(s["order"]), float(s["discount"]), bool(s["kneser_ney"]))
        model.unigram = s["unigram"]
        model.keys = [s[f"keys{m}"] for m in range(model.order - 1)]
        model.counts = [s[f"counts{m}"].astype(np.float64) for m in range(model.order - 1)]
        model.csum = [np.concatenate([[0.0], np.cumsum(c)]) for c in model.counts]
        return model

    def dist(self, hist, length):
        """Next-character distributions, (n, V), given each row's last
        ORDER-1 characters hist (n, ORDER-1), right-aligned, of which the
        last length[i] are real (the rest is padding)."""
        v, d = self.vocab, self.discount
        n = hist.shape[0]
        p = np.tile(self.unigram, (n, 1))
        ctx = np.zeros(n, dtype=np.int64)
        for m in range(1, self.order):
            ctx = ctx + hist[:, -m].astype(np.int64) * v ** (m - 1)
            keys, counts, csum = self.keys[m - 1], self.counts[m - 1], self.csum[m - 1]
            lo = np.searchsorted(keys, ctx * v)
            hi = np.searchsorted(keys, ctx * v + v)
            has = (hi > lo) & (length >= m)
            if not has.any():
                break
            total = csum[hi] - csum[lo]
            rows = np.nonzero(has)[0]
            p[rows] *= (d * (hi - lo)[rows] / total[rows])[:, None]
            lens = (hi - lo)[rows]
            rep = np.repeat(rows, lens)
            starts = np.repeat(np.cumsum(lens) - lens, lens)
            idx = np.arange(lens.sum()) - starts + np.repeat(lo[rows], lens)
            p[rep, keys[idx] % v] += (counts[idx] - d) / total[rep]
        return p


def windows(ids, positions, width):
    """For each position, the width characters before it (right-aligned,
    zero-padded) and how many of them are real."""
    pad = np.concatenate([np.zeros(width, dtype=ids.dtype), ids])
    hist = np.stack([pad[positions + j] for j in range(width)], axis=1)
    return hist, np.minimum(positions, width)
