"""Reference solution for the language-modelling task (hidden from agents).

Drop-in replacement for env/train.py: same inputs and output file. The GRU is
the starter's, trained as long as in the obvious fix (env/train.py with three
times the steps). What makes the difference is a copy mechanism: code repeats its
own names, which no model trained on other documents can know, but which
appear earlier in the same context. For each context, the longest suffix
that also occurs earlier in it (up to MAX_MATCH characters) votes for the
characters that followed those earlier occurrences; that vote is mixed into
the GRU's distribution with a weight that depends on the match length, fitted
on contexts cut from valid.txt exactly as the test contexts were cut.

It uses a GPU when PyTorch sees one (torch.cuda.is_available()) and the CPU
otherwise; STEPS (and the model's size) are the knobs to turn with more
compute. The run is seeded, so it repeats exactly on the same machine.
"""
import json
import math
import os
import time

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
# One CPU thread for BLAS and OpenMP, as for PyTorch below: two threads that
# wait on each other slow down badly on a busy machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

# The 97 characters of the data: newline, form feed (which starts each
# document) and the printable ASCII characters. Column k of submission.npy is
# ALPHABET[k].
ALPHABET = "\n\f" + "".join(chr(c) for c in range(32, 127))
SEED = 0
STEPS = 1000  # training steps
BATCH = 32  # sequences per step
SEQ = 128  # characters per training sequence, and of context when predicting
LR = 3e-3
HIDDEN = 128
MAX_MATCH = 32
BUCKETS = [1, 2, 3, 4, 6, 8, 12, 16, 24]  # lower edges of the match-length buckets
N_VALID_CONTEXTS = 2000
HERE = os.path.dirname(os.path.abspath(__file__))
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
INDEX = {c: i for i, c in enumerate(ALPHABET)}


def encode(text):
    return torch.tensor([INDEX[c] for c in text], dtype=torch.long)


def read(name):
    with open(os.path.join(HERE, name), newline="") as f:
        return f.read()


class CharGRU(nn.Module):
    def __init__(self, hidden=HIDDEN, emb=32):
        super().__init__()
        self.embed = nn.Embedding(len(ALPHABET), emb)
        self.rnn = nn.GRU(emb, hidden, batch_first=True)
        self.out = nn.Linear(hidden, len(ALPHABET))

    def forward(self, x, state=None):
        h, state = self.rnn(self.embed(x), state)
        return self.out(h), state


def train(model, data):
    model.to(DEVICE).train()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(SEED)
    start = time.perf_counter()
    for step in range(1, STEPS + 1):
        # Random windows of SEQ + 1 characters: inputs and next-character targets.
        i = torch.randint(0, len(data) - SEQ - 1, (BATCH,), generator=gen)
        window = torch.stack([data[j:j + SEQ + 1] for j in i.tolist()]).to(DEVICE)
        logits, _ = model(window[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, len(ALPHABET)), window[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            print(f"step {step}/{STEPS}: training loss {loss.item() / math.log(2):.3f} bits/char "
                  f"({time.perf_counter() - start:.0f} s)")
    return model


@torch.no_grad()
def valid_bits(model, data):
    """Bits per character over the whole validation text, the GRU's state
    carried from one chunk to the next."""
    model.eval()
    total, state = 0.0, None
    for i in range(0, len(data) - 1, 4096):
        x = data[i:i + 4096 + 1].to(DEVICE)
        logits, state = model(x[None, :-1], state)
        total += F.cross_entropy(logits[0], x[1:], reduction="sum").item()
    return total / (len(data) - 1) / math.log(2)


@torch.no_grad()
def predict(model, contexts):
    """Log-probabilities of the next character after each context, read from
    its last SEQ characters. Contexts of equal length go in one batch."""
    model.eval()
    out = torch.zeros(len(contexts), len(ALPHABET))
    by_len = {}
    for k, ctx in enumerate(contexts):
        by_len.setdefault(min(len(ctx), SEQ), []).append(k)
    for n, ks in by_len.items():
        for b in range(0, len(ks), 500):
            part = ks[b:b + 500]
            x = torch.stack([encode(contexts[k][-n:]) for k in part]).to(DEVICE)
            logits, _ = model(x)
            out[part] = F.log_softmax(logits[:, -1].float(), dim=-1).cpu()
    return out


def match_votes(ctx):
    """(length of the longest suffix of ctx that occurs earlier in it, the
    distribution of the characters that followed its earlier occurrences)."""
    best, n = 0, len(ctx)
    for m in range(1, min(MAX_MATCH, n - 1) + 1):
        if ctx.rfind(ctx[n - m:], 0, n - 1) < 0:
            break
        best = m
    votes = np.zeros(len(ALPHABET))
    if best:
        suffix, j = ctx[n - best:], ctx.find(ctx[n - best:])
        while 0 <= j < n - best:
            votes[INDEX[ctx[j + best]]] += 1
            j = ctx.find(suffix, j + 1)
        votes /= votes.sum()
    return best, votes


def bucket(length):
    return int(np.searchsorted(BUCKETS, length, side="right")) - 1  # -1: no match


def mix(logp, matches, weights):
    """log((1 - w) p + w q) per row, w by the row's match bucket."""
    p = np.exp(logp.astype(np.float64))
    for k, (length, votes) in enumerate(matches):
        b = bucket(length)
        if b >= 0:
            p[k] = (1 - weights[b]) * p[k] + weights[b] * votes
    return np.log(np.maximum(p, 1e-30))


def fit_weights(logp, matches, answers):
    """The mixing weight of each bucket that minimises the validation loss."""
    p = np.exp(logp.astype(np.float64))[np.arange(len(answers)), answers]
    q = np.array([votes[a] for (_, votes), a in zip(matches, answers)])
    b = np.array([bucket(length) for length, _ in matches])
    grid = np.linspace(0, 0.95, 20)
    weights = []
    for k in range(len(BUCKETS)):
        sel = b == k
        losses = [-np.log((1 - w) * p[sel] + w * q[sel] + 1e-30).sum() for w in grid]
        weights.append(float(grid[int(np.argmin(losses))]) if sel.any() else 0.0)
    return weights


def valid_contexts(text, n, rng):
    """Contexts and next characters cut from the validation documents the
    way the test contexts were: up to 512 characters before a position at
    least 16 into a document, starting with the form feed at its start."""
    docs = ["\f" + d for d in text.split("\f") if len(d) > 20]
    contexts, answers = [], []
    for _ in range(n):
        doc = docs[rng.integers(len(docs))]
        pos = int(rng.integers(16, len(doc)))
        contexts.append(doc[max(0, pos - 512):pos])
        answers.append(INDEX[doc[pos]])
    return contexts, np.array(answers)


def main():
    torch.manual_seed(SEED)
    # One thread: results then do not depend on the machine's core count.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)  # some CUDA kernels have no deterministic version
    valid_text = read("valid.txt")
    train_data, valid_data = encode(read("train.txt")), encode(valid_text)
    model = train(CharGRU(), train_data)
    print(f"validation: {valid_bits(model, valid_data):.4f} bits per character (GRU alone)")

    v_contexts, v_answers = valid_contexts(valid_text, N_VALID_CONTEXTS, np.random.default_rng(SEED))
    v_logp = predict(model, v_contexts).numpy()
    v_matches = [match_votes(c) for c in v_contexts]
    weights = fit_weights(v_logp, v_matches, v_answers)
    before = -v_logp[np.arange(len(v_answers)), v_answers].mean() / math.log(2)
    after = -mix(v_logp, v_matches, weights)[np.arange(len(v_answers)), v_answers].mean() / math.log(2)
    print(f"validation contexts: {before:.4f} bits per character for the GRU, {after:.4f} with copying")
    print("mixing weights by match length:", dict(zip(BUCKETS, weights)))

    contexts = json.loads(read("test_contexts.json"))
    logp = mix(predict(model, contexts).numpy(), [match_votes(c) for c in contexts], weights)
    np.save(os.path.join(HERE, "submission.npy"), logp.astype(np.float32))
    print(f"wrote submission.npy with {len(contexts)} rows (device: {DEVICE})")


if __name__ == "__main__":
    main()
