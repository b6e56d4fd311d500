"""Reference solution for the time-series forecasting task (hidden from agents).

Drop-in replacement for env/train.py. The series are products of components
(level, trend, weekly and yearly seasonality, holidays, promotions,
temperature), so the reference decomposes each series in log space with
a regression per series, as a retail forecaster would:

  log(1 + sales) ~ trend + day of week + yearly Fourier terms
                   + one dummy per public holiday (calendar.csv)
                   + weeks before Christmas (the run-up to the holiday)
                   + promo + the three days after a promotion (pull-forward)
                   + temperature (calendar.csv: a forecast known in advance)

fitted by ridge regression on the whole history, so that the holiday effects
are learnt from every past December. Abrupt level shifts (a shop refitted,
a product delisted elsewhere) break the trend, so the forecast is moved by
the mean residual of the last days before the horizon. The regression
gives every horizon day its forecast directly from known regressors, with no
recursion, and the final forecast averages, in log space, the corrections
over the last 7 and the last 14 days.
"""
import os

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
HORIZON = 28
RIDGE = 1.0
LEVEL_WINDOWS = (7, 14)


def regressors(dates, promo, calendar, origin):
    """The design matrix for one series on `dates` (a DatetimeIndex)."""
    cal = calendar.loc[dates]
    cols = {"const": np.ones(len(dates)), "trend": (dates - origin).days.to_numpy() / 365.25}
    dow = dates.dayofweek.to_numpy()
    for d in range(6):
        cols[f"dow{d}"] = (dow == d).astype(float)
    x = 2 * np.pi * dates.dayofyear.to_numpy() / 365.25
    for k in (1, 2, 3):
        cols[f"sin{k}"], cols[f"cos{k}"] = np.sin(k * x), np.cos(k * x)
    holiday = cal["holiday"].to_numpy()
    for name in sorted(set(calendar["holiday"]) - {""}):
        cols[name] = (holiday == name).astype(float)
    christmas = pd.to_datetime([f"{year}-12-25" for year in dates.year])
    to_christmas = (christmas - dates).days.to_numpy()
    run_up = (to_christmas > 0) & (to_christmas <= 28)
    for knot in (7, 14, 21, 28):  # a piecewise-linear run-up to Christmas
        cols[f"xmas{knot}"] = np.where(run_up, np.clip(knot - to_christmas, 0, None) / knot, 0.0)
    promo = np.asarray(promo, dtype=float)
    cols["promo"] = promo
    for k in (1, 2, 3):
        after = np.zeros_like(promo)
        after[k:] = promo[:-k] * (1 - promo[k:])
        cols[f"after_promo{k}"] = after
    cols["temperature"] = (cal["temperature"].to_numpy() - 11) / 9
    return np.column_stack(list(cols.values()))


def forecast_series(history, future, calendar):
    """Forecast one series' sales on future's dates from its history."""
    dates = pd.DatetimeIndex(pd.concat([history["date"], future["date"]]))
    promo = np.concatenate([history["promo"].to_numpy(), future["promo"].to_numpy()])
    A = regressors(dates, promo, calendar, dates[0])
    n = len(history)
    y = np.log1p(history["sales"].to_numpy(dtype=float))
    penalty = RIDGE * np.eye(A.shape[1])
    penalty[0, 0] = 0.0  # do not shrink the level
    beta = np.linalg.solve(A[:n].T @ A[:n] + penalty, A[:n].T @ y)
    residual = y - A[:n] @ beta
    base = A[n:] @ beta
    logs = [base + residual[-w:].mean() for w in LEVEL_WINDOWS]
    return np.clip(np.expm1(np.mean(logs, axis=0)), 0, None)


def forecast(history, future, calendar):
    out = pd.Series(np.nan, index=future.index)
    for series, past in history.groupby("series_id"):
        ahead = future[future["series_id"] == series].sort_values("date")
        out[ahead.index] = forecast_series(past.sort_values("date"), ahead, calendar)
    return out.to_numpy()


def mase(history, actual, predicted):
    """Mean over series of MAE / in-sample MAE of the lag-7 naive forecast."""
    scale = history.groupby("series_id")["sales"].apply(lambda s: s.diff(7).abs().mean())
    err = actual.assign(err=np.abs(actual["sales"].to_numpy() - predicted))
    return (err.groupby("series_id")["err"].mean() / scale).mean()


def main():
    train = pd.read_csv(os.path.join(HERE, "train.csv"), parse_dates=["date"])
    test = pd.read_csv(os.path.join(HERE, "test.csv"), parse_dates=["date"])
    calendar = pd.read_csv(os.path.join(HERE, "calendar.csv"), parse_dates=["date"], keep_default_na=False)
    calendar = calendar.set_index("date")

    cut = train["date"].max() - pd.Timedelta(days=HORIZON)
    past, held_out = train[train["date"] <= cut], train[train["date"] > cut].reset_index(drop=True)
    print(f"validation MASE: {mase(past, held_out, forecast(past, held_out, calendar)):.4f}")

    pred = forecast(train, test, calendar)
    submission = pd.DataFrame({"id": test["id"], "sales": pred})
    submission.to_csv(os.path.join(HERE, "submission.csv"), index=False)
    print(f"wrote submission.csv with {len(submission)} rows")


if __name__ == "__main__":
    main()
