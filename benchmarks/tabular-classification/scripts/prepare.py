"""Generate the data of the tabular-classification task.

mlab runs this once per task, with the working directory set to scripts/ of a
private copy of the task folder. It writes the agent-visible data to
../env/train.csv and ../env/test.csv and the hidden answers to ./answers.csv.

The data set is synthetic, made with numpy only from SECRET_SEED below. This
file lives in scripts/, which agents never see, so nobody can regenerate the
data and read off the hidden test labels (a public data set such as
scikit-learn's bundled ones could simply be looked up). Keep the seed private;
changing it, or anything else here, changes every score, so re-measure
levels.json and task.yaml's baseline afterwards.

How a row is made (none of this is told to the agent):
  * latent factors: "hidden" ones d (standard normal) and "plain" ones z
    (standard normal, mildly correlated);
  * each hidden factor is observed only through a pair of columns that share
    a large common nuisance factor c: one column measures c + d/2, the other
    c - d/2 (for one pair both through exp(), so d is a log-ratio). Each
    column alone says little about d, and the pair's information lies along
    a diagonal that axis-aligned tree splits approximate poorly;
  * the plain factors are observed directly, through monotone transforms
    (exp, cube, arctan, ...), plus noisy linear mixtures of them and a coarse
    integer bucketing of one;
  * each of the four classes gets a score that mixes non-linear functions of
    single factors with pairwise products and a sign (XOR-like) interaction;
    the label is drawn from the softmax of the scores (so classes overlap),
    and a few labels are then replaced at random;
  * irrelevant columns (normal, uniform, log-normal, Poisson counts, a coin
    flip) are added, every real-valued column gets its own random scale and
    offset, and the column order is shuffled.
"""
import os

import numpy as np

# Drawn once with secrets.randbits(63). Do not publish.
SECRET_SEED = 4807868500086029549

N_TRAIN = 4000
N_TEST = 2000
N_CLASSES = 4
N_HIDDEN = 4  # factors seen only through a pair of columns; the last as a log-ratio
N_PLAIN = 4
N_IRRELEVANT = 7
NUISANCE_SD = 3.0  # spread of a pair's common factor, relative to its hidden factor
PAIR_NOISE = 0.08  # measurement noise of each column of a pair
HIDDEN_WEIGHT = 1.0
PLAIN_WEIGHT = 0.6
TEMPERATURE = 0.35  # smaller = sharper class boundaries
LABEL_NOISE = 0.03  # fraction of labels redrawn uniformly at random

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = os.path.join(os.path.dirname(HERE), "env")


def plain_factors(rng, n, d):
    mix = np.eye(d) + 0.3 * rng.normal(size=(d, d)) * (rng.random((d, d)) < 0.3)
    z = rng.normal(size=(n, d)) @ mix.T
    return (z - z.mean(0)) / z.std(0)


def single_effects(rng, v, k, weight):
    basis = np.column_stack([v, v**2 - 1, np.sin(1.5 * v), np.maximum(v - 0.5, 0)])
    return weight * basis @ (rng.normal(size=(4, k)) * np.array([[0.6], [0.4], [0.6], [0.6]]))


def class_probabilities(rng, h, z, k):
    n = len(h)
    scores = np.zeros((n, k))
    for i in range(h.shape[1]):
        scores += single_effects(rng, h[:, i], k, HIDDEN_WEIGHT)
    for i in range(z.shape[1]):
        scores += single_effects(rng, z[:, i], k, PLAIN_WEIGHT)
    # Pairwise interactions: hidden x hidden, hidden x plain, and a sign pattern.
    both = np.column_stack([h, z])
    pairs = [(0, 1), (2, h.shape[1]), (h.shape[1] + 1, h.shape[1] + 2)]
    for i, j in pairs:
        scores += np.outer(both[:, i] * both[:, j], rng.normal(scale=0.6, size=k))
    scores += np.outer(np.sign(h[:, 3]) * np.sign(z[:, 0]), rng.normal(scale=0.8, size=k))

    scores /= TEMPERATURE
    scores -= scores.max(1, keepdims=True)
    p = np.exp(scores)
    return p / p.sum(1, keepdims=True)


def draw_labels(rng, p):
    n, k = p.shape
    y = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
    noisy = rng.random(n) < LABEL_NOISE
    return np.where(noisy, rng.integers(0, k, n), y)


def observed_features(rng, h, z):
    """Return a list of (column, decimals)."""
    n = len(h)
    cols = []
    # Pairs sharing a nuisance factor; the last pair through exp() (a ratio).
    for i in range(h.shape[1]):
        c = NUISANCE_SD * rng.normal(size=n)
        a = c + h[:, i] / 2 + PAIR_NOISE * rng.normal(size=n)
        b = c - h[:, i] / 2 + PAIR_NOISE * rng.normal(size=n)
        if i == h.shape[1] - 1:
            a, b = np.exp(0.4 * a), np.exp(0.4 * b)
        cols += [(a, 3), (b, 3)]
    transforms = [
        lambda v: v,
        lambda v: np.exp(0.6 * v),
        lambda v: v**3,
        lambda v: np.arctan(1.5 * v),
    ]
    cols += [(transforms[i % len(transforms)](z[:, i]), 3) for i in range(z.shape[1])]
    # Noisy linear mixtures of plain factors, and a coarse bucketing of one.
    for _ in range(2):
        w = rng.normal(size=z.shape[1]) * (rng.random(z.shape[1]) < 0.6)
        cols.append((z @ w + 0.5 * rng.normal(size=n), 3))
    cols.append((np.clip(np.floor(2 * z[:, rng.integers(z.shape[1])] + 5), 0, 9), 0))
    for m in range(N_IRRELEVANT):
        kind = m % 5
        if kind == 0:
            cols.append((rng.normal(size=n), 3))
        elif kind == 1:
            cols.append((rng.uniform(-1.7, 1.7, size=n), 3))
        elif kind == 2:
            cols.append((rng.lognormal(size=n), 3))
        elif kind == 3:
            cols.append((rng.poisson(3, size=n).astype(float), 0))
        else:
            cols.append(((rng.random(n) < 0.4).astype(float), 0))
    # Random scale and offset per real-valued column (integer ones stay as
    # they are; positive ones keep their sign, so a ratio stays a ratio).
    out = []
    for col, decimals in cols:
        if decimals:
            col = np.exp(rng.uniform(np.log(0.5), np.log(20))) * col
            if col.min() < 0:
                col = col + rng.choice([0.0, rng.uniform(-50, 50)])
        out.append((col, decimals))
    return out


def fmt(value, decimals):
    text = f"{value:.{decimals}f}"
    return "0" if decimals and float(text) == 0 else text  # no "-0.000"


def main():
    rng = np.random.default_rng(SECRET_SEED)
    n = N_TRAIN + N_TEST
    h = rng.normal(size=(n, N_HIDDEN))
    z = plain_factors(rng, n, N_PLAIN)
    p = class_probabilities(rng, h, z, N_CLASSES)
    y = draw_labels(rng, p)
    cols = observed_features(rng, h, z)
    order = rng.permutation(len(cols))
    cols = [cols[i] for i in order]
    names = [f"f{i:02d}" for i in range(len(cols))]

    def values(r):
        return [fmt(col[r], dec) for col, dec in cols]

    # Rows are i.i.d., so the last N_TEST rows make the test set, with ids 0..N_TEST-1.
    os.makedirs(ENV, exist_ok=True)
    with open(os.path.join(ENV, "train.csv"), "w", newline="\n") as f:
        f.write(",".join(names + ["label"]) + "\n")
        for r in range(N_TRAIN):
            f.write(",".join(values(r) + [str(y[r])]) + "\n")
    with open(os.path.join(ENV, "test.csv"), "w", newline="\n") as f:
        f.write(",".join(["id"] + names) + "\n")
        for k, r in enumerate(range(N_TRAIN, n)):
            f.write(",".join([str(k)] + values(r)) + "\n")
    with open(os.path.join(HERE, "answers.csv"), "w", newline="\n") as f:
        f.write("id,label\n")
        for k, r in enumerate(range(N_TRAIN, n)):
            f.write(f"{k},{y[r]}\n")
    # Accuracy of the (unknowable) true class probabilities, label noise included.
    bayes = p.max(1) * (1 - LABEL_NOISE) + LABEL_NOISE / N_CLASSES
    print(
        f"train: {N_TRAIN} rows, test: {N_TEST} rows, {len(names)} features, "
        f"{N_CLASSES} classes (counts {np.bincount(y, minlength=N_CLASSES).tolist()}); "
        f"Bayes-optimal test accuracy ~ {bayes[N_TRAIN:].mean():.3f}"
    )


if __name__ == "__main__":
    main()
