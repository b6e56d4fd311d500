"""Baseline for the language-modelling task.

Trains a small character-level GRU language model on train.txt, reports its
cross-entropy on valid.txt in bits per character, then writes submission.npy:
for each context in test_contexts.json, the log-probabilities of the character
that follows it (one row per context, one column per character of ALPHABET).

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
STEPS = 350  # training steps
BATCH = 32  # sequences per step
SEQ = 128  # characters per training sequence, and of context when predicting
LR = 3e-3
HIDDEN = 128
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


def main():
    torch.manual_seed(SEED)
    # One thread: results then do not depend on the machine's core count.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)  # some CUDA kernels have no deterministic version
    train_data, valid_data = encode(read("train.txt")), encode(read("valid.txt"))
    model = train(CharGRU(), train_data)
    print(f"validation: {valid_bits(model, valid_data):.4f} bits per character")
    contexts = json.loads(read("test_contexts.json"))
    logp = predict(model, contexts)
    np.save(os.path.join(HERE, "submission.npy"), logp.numpy().astype(np.float32))
    print(f"wrote submission.npy with {len(contexts)} rows (device: {DEVICE})")


if __name__ == "__main__":
    main()
