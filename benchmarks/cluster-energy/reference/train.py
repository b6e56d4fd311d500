"""Reference solution: symmetry functions, then a linear model.

An isolated cluster's energy does not change when it is rotated or moved, or
when its atoms are listed in another order; raw coordinates hide this, so
tree models on them learn little beyond the composition. Describe each
cluster by quantities that have these symmetries (Behler-Parrinello
symmetry functions), and the energy, a sum of pair and three-body terms,
becomes almost linear in them:

- radial: for each species pair (00, 01, 11), the sum over atom pairs of
  Gaussian bumps exp(-((r - mu) / w)^2) on a grid of distances mu: a linear
  model on these learns each pair potential as a smooth function of r;
- angular: for each centre species, the sum over triplets of
  exp(-eta (rij^2 + rik^2 + rjk^2)) 2^(1-zeta) (1 + lambda cos theta_ijk)^zeta.

Ridge regression (alpha by generalised cross-validation) fits them.
"""
import itertools

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV

N_ATOMS = 6
CENTRES = np.linspace(0.8, 6.5, 80)
WIDTH = 0.08
ETAS, ZETAS, LAMBDAS = (0.05, 0.15, 0.5), (1, 2, 4, 8), (-1, 1)
SEED = 0

PAIRS = np.array(list(itertools.combinations(range(N_ATOMS), 2)))
TRIPLETS = np.array([(i, j, k) for i in range(N_ATOMS) for j, k in itertools.combinations(range(N_ATOMS), 2)
                     if i not in (j, k)])


def geometry(frame):
    atoms = frame[[f"{c}{k}" for k in range(N_ATOMS) for c in "sxyz"]].to_numpy().reshape(len(frame), N_ATOMS, 4)
    species, pos = atoms[:, :, 0].astype(int), atoms[:, :, 1:]
    return species, np.linalg.norm(pos[:, :, None] - pos[:, None], axis=-1)


def features(frame):
    species, dist = geometry(frame)
    out = [species.sum(1, keepdims=True)]
    i, j = PAIRS.T
    r, kind = dist[:, i, j], species[:, i] + species[:, j]  # kind 0, 1, 2: pairs 00, 01, 11
    bumps = np.exp(-(((r[..., None] - CENTRES) / WIDTH) ** 2))
    out += [(bumps * (kind == k)[..., None]).sum(1) for k in range(3)]
    c, j, k = TRIPLETS.T
    rij, rik, rjk = dist[:, c, j], dist[:, c, k], dist[:, j, k]
    cos = (rij ** 2 + rik ** 2 - rjk ** 2) / (2 * rij * rik)
    for eta in ETAS:
        radial = np.exp(-eta * (rij ** 2 + rik ** 2 + rjk ** 2))
        for zeta, lam in itertools.product(ZETAS, LAMBDAS):
            g = radial * 2.0 ** (1 - zeta) * (1 + lam * cos) ** zeta
            out += [(g * (species[:, c] == s)).sum(1, keepdims=True) for s in (0, 1)]
    return np.hstack(out)


def model():
    return RidgeCV(alphas=np.logspace(-8, 2, 21))


train = pd.read_csv("train.csv")
test = pd.read_csv("test.csv")
X, y = features(train), train["energy"].to_numpy()

rng = np.random.default_rng(SEED)
held_out = rng.permutation(len(X)) < len(X) // 5
m = model().fit(X[~held_out], y[~held_out])
print(f"validation RMSE: {np.sqrt(np.mean((m.predict(X[held_out]) - y[held_out]) ** 2)):.4f} (alpha {m.alpha_:.3g})")

m = model().fit(X, y)
pd.DataFrame({"id": test["id"], "energy": m.predict(features(test))}).to_csv("submission.csv", index=False)
print("wrote submission.csv")
