"""Generate the data files of the tabular-classification task.

Run once with /usr/bin/python3 from anywhere; the mlab server never runs it.
It writes env/train.csv, env/test.csv and scripts/answers.csv next to this
folder, and prints the data shape and the Bayes-optimal accuracy.

The data set is synthetic and made with numpy only, from SECRET_SEED below:
this file lives in reference/, which agents never see, so they cannot
regenerate the data and read off the hidden test labels (a public data set
such as scikit-learn's bundled ones could simply be looked up). Keep the seed
private; changing it, or anything else here, changes every CSV, so rerun
benchmarks/verify_tasks.py and update task.yaml's baseline afterwards.

How a row is made:
  * six latent factors z (standard normal, mildly correlated) carry all the
    signal;
  * each of the four classes gets a score that mixes non-linear functions of
    single factors (quadratic, sine, hinge) with pairwise products and a sign
    (XOR-like) interaction; the label is drawn from the softmax of the scores
    (so classes overlap), and 4% of labels are then replaced at random;
  * the 22 observed features are the factors through monotone transforms
    (exp, cube, arctan, sinh, ...), noisy linear mixtures and a coarse
    integer bucketing of them, plus ten irrelevant columns (normal, uniform,
    log-normal, Poisson counts, a coin flip); every column gets its own
    random scale and offset, and the column order is shuffled.
A single shallow tree or a linear model captures this poorly, while an
ensemble of trees (random forest, gradient boosting) does clearly better.
"""
import os

import numpy as np

# Drawn once with secrets.randbits(63). Do not publish.
SECRET_SEED = 2462184305215486499

N_ROWS = 3000
N_TEST = 900
N_CLASSES = 4
N_FACTORS = 6
N_IRRELEVANT = 10
TEMPERATURE = 0.3  # smaller = sharper class boundaries
LABEL_NOISE = 0.04  # fraction of labels redrawn uniformly at random

TASK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def latent_factors(rng, n, d):
    mix = np.eye(d) + 0.3 * rng.normal(size=(d, d)) * (rng.random((d, d)) < 0.3)
    z = rng.normal(size=(n, d)) @ mix.T
    return (z - z.mean(0)) / z.std(0)


def class_probabilities(rng, z, k):
    n, d = z.shape
    scores = np.zeros((n, k))
    # Non-linear effects of single factors.
    weights = np.array([[0.6], [0.4], [0.6], [0.6]])
    for i in range(d):
        v = z[:, i]
        basis = np.column_stack([v, v**2 - 1, np.sin(v), np.maximum(v - 0.5, 0)])
        scores += basis @ (rng.normal(size=(4, k)) * weights)
    # Pairwise interactions, one of them also as a sign (XOR-like) pattern.
    pairs = [tuple(rng.choice(d, 2, replace=False)) for _ in range(3)]
    for i, j in pairs:
        scores += np.outer(z[:, i] * z[:, j], rng.normal(scale=0.6, size=k))
    i, j = pairs[0]
    scores += np.outer(np.sign(z[:, i]) * np.sign(z[:, j]), rng.normal(scale=0.8, size=k))

    scores /= TEMPERATURE
    scores -= scores.max(1, keepdims=True)
    p = np.exp(scores)
    return p / p.sum(1, keepdims=True)


def draw_labels(rng, p):
    n, k = p.shape
    y = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
    noisy = rng.random(n) < LABEL_NOISE
    return np.where(noisy, rng.integers(0, k, n), y)


def observed_features(rng, z, n_irrelevant):
    """Return a list of (column, decimals)."""
    n, d = z.shape
    transforms = [
        lambda v: v,
        lambda v: np.exp(0.6 * v),
        lambda v: v**3,
        lambda v: np.arctan(1.5 * v),
        lambda v: np.sinh(v),
        lambda v: v,
    ]
    cols = [(transforms[i](z[:, i]), 3) for i in range(d)]
    # Redundant, noisy linear mixtures of a few factors.
    for _ in range(4):
        w = rng.normal(size=d) * (rng.random(d) < 0.5)
        cols.append((z @ w + 0.5 * rng.normal(size=n), 3))
    # A noisy copy of one factor, and a coarse integer bucketing of another.
    a, b = rng.choice(d, 2, replace=False)
    cols.append((z[:, a] + 0.7 * rng.normal(size=n), 3))
    cols.append((np.clip(np.floor(2 * z[:, b] + 5), 0, 9), 0))
    # Irrelevant columns.
    for m in range(n_irrelevant):
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
    # Random scale and offset per real-valued column (integer ones stay as they are).
    out = []
    for col, decimals in cols:
        if decimals:
            scale = np.exp(rng.uniform(np.log(0.5), np.log(20)))
            offset = rng.choice([0.0, rng.uniform(-50, 50)])
            col = scale * col + offset
        out.append((col, decimals))
    return out


def fmt(value, decimals):
    text = f"{value:.{decimals}f}"
    return "0" if decimals and float(text) == 0 else text  # no "-0.000"


def write_csv(path, header, columns, decimals, rows):
    with open(path, "w", newline="\n") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(fmt(columns[c][r], decimals[c]) for c in range(len(columns))) + "\n")


def main():
    rng = np.random.default_rng(SECRET_SEED)
    z = latent_factors(rng, N_ROWS, N_FACTORS)
    p = class_probabilities(rng, z, N_CLASSES)
    y = draw_labels(rng, p)
    cols = observed_features(rng, z, N_IRRELEVANT)
    order = rng.permutation(len(cols))
    cols = [cols[i] for i in order]
    features = [f"f{i:02d}" for i in range(len(cols))]
    columns = [c for c, _ in cols]
    decimals = [dec for _, dec in cols]

    # Rows are i.i.d., so the last N_TEST rows make the test set; its ids are 0..N_TEST-1.
    n_train = N_ROWS - N_TEST
    train_rows = range(n_train)
    test_rows = range(n_train, N_ROWS)
    ids = np.arange(N_TEST, dtype=float)
    y = y.astype(float)

    write_csv(
        os.path.join(TASK_DIR, "env", "train.csv"),
        features + ["label"],
        columns + [y],
        decimals + [0],
        train_rows,
    )
    write_csv(
        os.path.join(TASK_DIR, "env", "test.csv"),
        ["id"] + features,
        [np.concatenate([np.zeros(n_train), ids])] + columns,
        [0] + decimals,
        test_rows,
    )
    write_csv(
        os.path.join(TASK_DIR, "scripts", "answers.csv"),
        ["id", "label"],
        [np.concatenate([np.zeros(n_train), ids]), y],
        [0, 0],
        test_rows,
    )
    # Accuracy of the (unknowable) true class probabilities, label noise included.
    bayes = p.max(1) * (1 - LABEL_NOISE) + LABEL_NOISE / N_CLASSES
    print(
        f"train: {n_train} rows, test: {N_TEST} rows, {len(features)} features, "
        f"{N_CLASSES} classes (counts {np.bincount(y.astype(int)).tolist()}); "
        f"Bayes-optimal test accuracy ~ {bayes[n_train:].mean():.3f}"
    )


if __name__ == "__main__":
    main()
