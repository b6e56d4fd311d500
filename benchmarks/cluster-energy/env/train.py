"""Starter: predict the energy of each test cluster with a random forest.

Trains a random forest on the raw columns of train.csv, prints its RMSE on a
held-out fifth of train.csv, then refits on all of it and writes
submission.csv (columns id,energy) for test.csv.
"""
import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor

# Model settings.
N_ESTIMATORS = 100
MAX_DEPTH = None
MIN_SAMPLES_LEAF = 1
MAX_FEATURES = 1.0
SEED = 0

train = pd.read_csv("train.csv")
test = pd.read_csv("test.csv")
features = [c for c in train.columns if c not in ("id", "energy")]
X, y = train[features].to_numpy(), train["energy"].to_numpy()


def model():
    return RandomForestRegressor(n_estimators=N_ESTIMATORS, max_depth=MAX_DEPTH, min_samples_leaf=MIN_SAMPLES_LEAF,
                                 max_features=MAX_FEATURES, random_state=SEED)


rng = np.random.default_rng(SEED)
held_out = rng.permutation(len(X)) < len(X) // 5
m = model().fit(X[~held_out], y[~held_out])
rmse = np.sqrt(np.mean((m.predict(X[held_out]) - y[held_out]) ** 2))
print(f"validation RMSE: {rmse:.4f}")

m = model().fit(X, y)
pd.DataFrame({"id": test["id"], "energy": m.predict(test[features].to_numpy())}).to_csv("submission.csv", index=False)
print("wrote submission.csv")
