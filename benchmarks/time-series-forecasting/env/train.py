"""Baseline for the time-series forecasting task.

Forecasts each series by repeating its last observed week (seasonal naive).
It first reports the MASE this method gets when the last 28 days of
train.csv are held out, then forecasts the 28 days of test.csv and writes
submission.csv (columns: id,sales).
"""
import os

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
HORIZON = 28


def forecast(history, test):
    """Repeat each series' last 7 days over the dates in `test`."""
    last = history[history["date"] > history["date"].max() - pd.Timedelta(days=7)]
    last = last.assign(dow=last["date"].dt.dayofweek)[["series_id", "dow", "sales"]]
    days = test[["series_id", "date"]].assign(dow=test["date"].dt.dayofweek)
    out = days.merge(last, on=["series_id", "dow"], how="left")
    return out["sales"].to_numpy()


def mase(history, actual, predicted):
    """Mean over series of MAE / in-sample MAE of the lag-7 naive forecast."""
    scale = history.groupby("series_id")["sales"].apply(lambda s: s.diff(7).abs().mean())
    err = actual.assign(err=np.abs(actual["sales"].to_numpy() - predicted))
    return (err.groupby("series_id")["err"].mean() / scale).mean()


def main():
    train = pd.read_csv(os.path.join(HERE, "train.csv"), parse_dates=["date"])
    test = pd.read_csv(os.path.join(HERE, "test.csv"), parse_dates=["date"])

    # Hold out the last HORIZON days of the history to estimate the error.
    cut = train["date"].max() - pd.Timedelta(days=HORIZON)
    past, held_out = train[train["date"] <= cut], train[train["date"] > cut].reset_index(drop=True)
    print(f"validation MASE: {mase(past, held_out, forecast(past, held_out)):.4f}")

    pred = forecast(train, test)
    submission = pd.DataFrame({"id": test["id"], "sales": pred})
    submission.to_csv(os.path.join(HERE, "submission.csv"), index=False)
    print(f"wrote submission.csv with {len(submission)} rows")


if __name__ == "__main__":
    main()
