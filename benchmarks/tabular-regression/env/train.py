"""Baseline for the taxi trip duration task.

Trains a linear regression on the numeric columns of train.csv (missing
values filled with the column median), reports its mean absolute error on a
held-out part of the training data, then refits on all training rows and
writes predictions for test.csv to submission.csv (columns: id,duration).
"""
import os

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

SEED = 0
TARGET = "duration"
HERE = os.path.dirname(os.path.abspath(__file__))


def make_model():
    return make_pipeline(SimpleImputer(strategy="median"), LinearRegression())


def features(df):
    """The numeric columns, as they are (text columns are left out)."""
    return df.select_dtypes("number").drop(columns=["id", TARGET], errors="ignore")


def main():
    train = pd.read_csv(os.path.join(HERE, "train.csv"))
    test = pd.read_csv(os.path.join(HERE, "test.csv"))
    X, y = features(train), train[TARGET].to_numpy()
    print(f"features: {', '.join(X.columns)}")

    # Hold out 20% of the training rows to estimate generalisation.
    X_tr, X_val, y_tr, y_val = train_test_split(X, y, test_size=0.2, random_state=SEED)
    model = make_model().fit(X_tr, y_tr)
    val_mae = np.abs(model.predict(X_val) - y_val).mean()
    print(f"validation MAE: {val_mae:.4f} minutes")

    # Refit on every training row before predicting the test set.
    model = make_model().fit(X, y)
    pred = model.predict(features(test)[X.columns])
    submission = pd.DataFrame({"id": test["id"], TARGET: pred})
    submission.to_csv(os.path.join(HERE, "submission.csv"), index=False)
    print(f"wrote submission.csv with {len(submission)} rows")


if __name__ == "__main__":
    main()
