"""Generates the cluster-energy data set (hidden: only its outputs are shown).

Each sample is a cluster of six atoms of two species, 0 and 1. Its energy is a
sum of Morse pair potentials, one per species pair, plus an Axilrod-Teller
three-body term, plus a little Gaussian noise. Clusters are grown atom by atom
at bonding distances; each is then rotated uniformly at random, translated,
and its atoms are listed in random order.

Writes ../env/train.csv (with energies) and ../env/test.csv (without), and the
hidden test energies to ./answers.csv. Deterministic: fixed seed, numpy only.
"""
import csv
import os

import numpy as np

SEED = 20240917  # the secret: with it, the answers are recomputable
N_ATOMS = 6
N_TRAIN, N_TEST = 4000, 2000
NOISE = 0.03
# Morse parameters (depth D, stiffness a, equilibrium distance r0) per species pair.
PAIR = {(0, 0): (1.0, 1.8, 1.10), (0, 1): (1.6, 1.5, 1.25), (1, 1): (0.7, 2.2, 1.00)}
THREE_BODY = 0.4

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = os.path.join(HERE, "..", "env")


def grow(rng):
    """Positions of a connected cluster: each new atom bonds to an earlier one."""
    pos = [np.zeros(3)]
    while len(pos) < N_ATOMS:
        v = rng.normal(size=3)
        p = pos[rng.integers(len(pos))] + v / np.linalg.norm(v) * rng.uniform(0.9, 1.7)
        if min(np.linalg.norm(p - q) for q in pos) >= 0.85:
            pos.append(p)
    return np.array(pos)


def energy(pos, species):
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    e = 0.0
    for i in range(N_ATOMS):
        for j in range(i + 1, N_ATOMS):
            depth, a, r0 = PAIR[tuple(sorted((species[i], species[j])))]
            x = np.exp(-a * (d[i, j] - r0))
            e += depth * (x * x - 2 * x)
            for k in range(j + 1, N_ATOMS):
                rij, rjk, rik = d[i, j], d[j, k], d[i, k]
                ci = (rij * rij + rik * rik - rjk * rjk) / (2 * rij * rik)
                cj = (rij * rij + rjk * rjk - rik * rik) / (2 * rij * rjk)
                ck = (rjk * rjk + rik * rik - rij * rij) / (2 * rjk * rik)
                e += THREE_BODY * (1 + 3 * ci * cj * ck) / (rij * rjk * rik) ** 3
    return e


def rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def make(n, rng):
    rows, energies = [], []
    for _ in range(n):
        pos, species = grow(rng), rng.integers(0, 2, N_ATOMS)
        energies.append(energy(pos, species) + rng.normal(0, NOISE))
        pos = pos @ rotation(rng).T + rng.normal(0, 2.0, 3)
        order = rng.permutation(N_ATOMS)
        row = []
        for k in order:
            row += [int(species[k])] + [f"{c:.6f}" for c in pos[k]]
        rows.append(row)
    return rows, energies


def write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def main():
    rng = np.random.default_rng(SEED)
    train, y_train = make(N_TRAIN, rng)
    test, y_test = make(N_TEST, rng)
    columns = [f"{c}{k}" for k in range(N_ATOMS) for c in ("s", "x", "y", "z")]
    os.makedirs(ENV, exist_ok=True)
    write(os.path.join(ENV, "train.csv"), ["id"] + columns + ["energy"],
          [[i] + r + [f"{e:.6f}"] for i, (r, e) in enumerate(zip(train, y_train))])
    # Test ids follow on from the training ids, shuffled, so that neither
    # the order nor the numbering says anything.
    ids = N_TRAIN + rng.permutation(N_TEST)
    write(os.path.join(ENV, "test.csv"), ["id"] + columns, [[i] + r for i, r in zip(ids, test)])
    write(os.path.join(HERE, "answers.csv"), ["id", "energy"],
          sorted([i, f"{e:.8f}"] for i, e in zip(ids, y_test)))


if __name__ == "__main__":
    main()
