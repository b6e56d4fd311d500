"""Obvious first fix for the time-series forecasting task (hidden from agents).

A standard global model with default settings: one HistGradientBoosting
regressor for all series on lag features and the columns of test.csv. Every
lag is at least 28 days old, so the 28 test days are forecast in one step
without feeding forecasts back in.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "2")  # must precede the sklearn import

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.ensemble import HistGradientBoostingRegressor  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HORIZON = 28
LAGS = [28, 35, 42, 49, 56, 364]


def features(frame):
    """Lags of sales, calendar fields and promo for every row of `frame`."""
    frame = frame.sort_values(["series_id", "date"]).reset_index(drop=True)
    g = frame.groupby("series_id")["sales"]
    X = pd.DataFrame({
        "series": frame["series_id"].str[1:].astype(int),
        "dow": frame["date"].dt.dayofweek,
        "day": frame["date"].dt.day,
        "month": frame["date"].dt.month,
        "promo": frame["promo"],
    })
    for lag in LAGS:
        X[f"lag{lag}"] = g.shift(lag)
    X["mean28"] = g.transform(lambda s: s.shift(HORIZON).rolling(28).mean())
    return frame, X


def fit_predict(history, future):
    both = pd.concat([history, future.assign(sales=np.nan)], ignore_index=True)
    both, X = features(both)
    known = both["sales"].notna().to_numpy()
    model = HistGradientBoostingRegressor(random_state=0)
    model.fit(X[known], both.loc[known, "sales"])
    pred = pd.Series(model.predict(X[~known]), index=both.index[~known])
    keyed = both.loc[~known, ["series_id", "date"]].assign(pred=pred.clip(lower=0))
    return future[["series_id", "date"]].merge(keyed, on=["series_id", "date"], how="left")["pred"].to_numpy()


def mase(history, actual, predicted):
    """Mean over series of MAE / in-sample MAE of the lag-7 naive forecast."""
    scale = history.groupby("series_id")["sales"].apply(lambda s: s.diff(7).abs().mean())
    err = actual.assign(err=np.abs(actual["sales"].to_numpy() - predicted))
    return (err.groupby("series_id")["err"].mean() / scale).mean()


def main():
    train = pd.read_csv(os.path.join(HERE, "train.csv"), parse_dates=["date"])
    test = pd.read_csv(os.path.join(HERE, "test.csv"), parse_dates=["date"])

    cut = train["date"].max() - pd.Timedelta(days=HORIZON)
    past, held_out = train[train["date"] <= cut], train[train["date"] > cut].reset_index(drop=True)
    print(f"validation MASE: {mase(past, held_out, fit_predict(past, held_out.drop(columns='sales'))):.4f}")

    pred = fit_predict(train, test)
    submission = pd.DataFrame({"id": test["id"], "sales": pred})
    submission.to_csv(os.path.join(HERE, "submission.csv"), index=False)
    print(f"wrote submission.csv with {len(submission)} rows")


if __name__ == "__main__":
    main()
