"""Prepare the time-series-forecasting task (hidden from agents).

Simulates daily unit sales of many products in many shops from a secret seed
and writes, relative to the working directory (scripts/):
  ../env/train.csv     series_id,date,sales,promo: the history (agent-visible)
  ../env/test.csv      id,series_id,date,promo: the 28 days to forecast
  ../env/calendar.csv  date,holiday,temperature for every day, horizon
                       included (both known in advance)
  answers.csv          id,series_id,sales of the horizon (hidden)
  scales.csv           series_id,scale: each series' in-sample mean absolute
                       error of the seasonal naive forecast (lag 7), the
                       denominator of MASE (hidden, though the agent can
                       recompute it from train.csv)

Each series is a product of components, as retail sales are:
  level x trend (with slope changes) x regime shifts (abrupt level changes,
  some of them shortly before the horizon) x weekly profile x yearly
  seasonality x holiday effects (closures, eves, a pre-Christmas ramp) x
  promotion uplift (with a pull-forward dip after it) x temperature response
  (only for weather-sensitive products, some positive, some negative)
  x multiplicative noise, rounded to whole units.
The horizon is the four weeks before the new year, so it holds the Christmas
ramp, the holidays, promotions and regime shifts the history has shown.

Only Python's own `random` and `math` modules are used: `random`'s streams are
stable across Python 3 versions, so the files are identical everywhere (up
to the last digit of a libm result, which rounding to whole units and to 0.1
degrees absorbs).
"""
import csv
import datetime
import math
import os
import random

SEED = 52_817_340_661
N_SERIES = 150
START = datetime.date(2021, 1, 4)   # a Monday
N_HIST = 1064                       # 152 weeks of history
HORIZON = 28
TWO_PI = 2 * math.pi

# weekly profiles, Monday first; each series perturbs one of them
WEEKLY = [
    [0.85, 0.85, 0.9, 0.95, 1.15, 1.45, 0.85],   # weekend shopping
    [1.15, 1.1, 1.1, 1.1, 1.05, 0.75, 0.55],     # weekday trade
    [0.95, 0.95, 1.0, 1.0, 1.05, 1.05, 0.95],    # flat
]


def easter(year):
    """Gregorian Easter Sunday (anonymous algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l) // 451
    month = (h + l - 7 * m + 114) // 31
    day = (h + l - 7 * m + 114) % 31 + 1
    return datetime.date(year, month, day)


def holidays(year):
    """date -> holiday name for one year."""
    e = easter(year)
    may = datetime.date(year, 5, 1)
    aug = datetime.date(year, 8, 31)
    nov = datetime.date(year, 11, 1)
    first_fri = nov + datetime.timedelta((4 - nov.weekday()) % 7)
    return {
        datetime.date(year, 1, 1): "new_year",
        e - datetime.timedelta(2): "good_friday",
        e + datetime.timedelta(1): "easter_monday",
        may + datetime.timedelta((7 - may.weekday()) % 7): "may_day",
        aug - datetime.timedelta(aug.weekday()): "summer_bank_holiday",
        first_fri + datetime.timedelta(21): "black_friday",
        datetime.date(year, 12, 24): "christmas_eve",
        datetime.date(year, 12, 25): "christmas",
        datetime.date(year, 12, 26): "boxing_day",
        datetime.date(year, 12, 31): "new_years_eve",
    }


class Series:
    """The secret parameters of one series."""

    def __init__(self, rng, n_days):
        r = rng
        self.level = math.exp(r.uniform(math.log(8), math.log(400)))
        base = r.choice(WEEKLY)
        amp = r.uniform(0.5, 1.5)
        week = [math.exp(amp * math.log(v) + r.gauss(0, 0.04)) for v in base]
        mean = sum(week) / 7
        self.week = [v / mean for v in week]
        self.year = [r.gauss(0, 0.15) for _ in range(4)]
        # log-trend: a slope per year that changes at up to two random days
        self.slopes = [(0, r.gauss(0, 0.12))]
        for _ in range(r.randint(0, 2)):
            self.slopes.append((r.randrange(60, n_days), r.gauss(0, 0.2)))
        self.slopes.sort()
        # regime shifts: abrupt level changes; a third of the series get one
        # in the last 100 days of the history
        self.shifts = []
        if r.random() < 0.5:
            self.shifts.append((r.randrange(100, N_HIST - 100), r.gauss(0, 0.35)))
        if r.random() < 0.33:
            self.shifts.append((r.randrange(N_HIST - 100, N_HIST - 7), r.gauss(0, 0.35)))
        self.closed = r.uniform(0.05, 0.4)       # trade on closure days
        self.eve = r.uniform(1.1, 1.8)            # christmas / new year's eve
        self.ramp = r.uniform(0.1, 0.9)           # pre-christmas uplift
        self.friday = r.uniform(1.0, 2.0)         # black friday
        self.bank = r.uniform(0.5, 1.2)           # other public holidays
        self.promo_lift = r.uniform(1.15, 2.2)
        self.promo_dip = r.uniform(0.7, 1.0)      # the days after a promotion
        self.promo_rate = r.uniform(0.01, 0.04)   # promotions starting per day
        self.temp = r.gauss(0, 0.35) if r.random() < 0.4 else 0.0
        self.noise = r.uniform(0.06, 0.2)

    def log_trend(self, t):
        total, prev_t, slope = 0.0, 0, 0.0
        for start, s in self.slopes:
            total += slope * (min(t, start) - prev_t) / 365.25
            if t <= start:
                return total
            prev_t, slope = start, s
        return total + slope * (t - prev_t) / 365.25


def temperatures(rng, n_days):
    """A daily temperature (degrees C) with a yearly cycle and persistence."""
    out, dev = [], 0.0
    for t in range(n_days):
        dev = 0.8 * dev + rng.gauss(0, 1.8)
        doy = (START + datetime.timedelta(t)).timetuple().tm_yday
        out.append(round(11 + 9 * math.sin(TWO_PI * (doy - 110) / 365.25) + dev, 1))
    return out


def promotions(rng, s, n_days):
    flags = [0] * n_days
    t = 0
    while t < n_days:
        if rng.random() < s.promo_rate:
            length = rng.randint(3, 7)
            for u in range(t, min(n_days, t + length)):
                flags[u] = 1
            t += length + rng.randint(7, 21)  # no promotion right after one
        else:
            t += 1
    return flags


def simulate(rng, s, dates, cal, temp, promo):
    sales = []
    for t, day in enumerate(dates):
        doy = day.timetuple().tm_yday
        x = TWO_PI * doy / 365.25
        log_m = math.log(s.level) + s.log_trend(t)
        log_m += sum(shift for start, shift in s.shifts if t >= start)
        log_m += s.year[0] * math.sin(x) + s.year[1] * math.cos(x)
        log_m += s.year[2] * math.sin(2 * x) + s.year[3] * math.cos(2 * x)
        log_m += s.temp * (temp[t] - 11) / 9
        m = math.exp(log_m) * s.week[day.weekday()]
        name = cal.get(day, "")
        if name in ("christmas", "new_year"):
            m *= s.closed
        elif name in ("christmas_eve", "new_years_eve"):
            m *= s.eve
        elif name == "black_friday":
            m *= s.friday
        elif name:
            m *= s.bank
        to_eve = (datetime.date(day.year, 12, 24) - day).days
        if 0 < to_eve <= 14:
            m *= 1 + s.ramp * (15 - to_eve) / 14
        if promo[t]:
            m *= s.promo_lift
        elif any(promo[max(0, t - 3):t]):
            m *= s.promo_dip
        sales.append(max(0, round(m * math.exp(rng.gauss(0, s.noise)))))
    return sales


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def main():
    rng = random.Random(SEED)
    n_days = N_HIST + HORIZON
    dates = [START + datetime.timedelta(t) for t in range(n_days)]
    cal = {}
    for year in range(START.year, dates[-1].year + 1):
        cal.update(holidays(year))
    temp = temperatures(rng, n_days)

    train, test, answers, scales = [], [], [], []
    next_id = 0
    for i in range(N_SERIES):
        s = Series(rng, n_days)
        promo = promotions(rng, s, n_days)
        sales = simulate(rng, s, dates, cal, temp, promo)
        sid = f"S{i:03d}"
        for t in range(N_HIST):
            train.append((sid, dates[t].isoformat(), sales[t], promo[t]))
        for t in range(N_HIST, n_days):
            test.append((next_id, sid, dates[t].isoformat(), promo[t]))
            answers.append((next_id, sid, sales[t]))
            next_id += 1
        diffs = [abs(sales[t] - sales[t - 7]) for t in range(7, N_HIST)]
        scales.append((sid, repr(math.fsum(diffs) / len(diffs))))

    env = os.path.join("..", "env")
    os.makedirs(env, exist_ok=True)
    write_csv(os.path.join(env, "train.csv"), ["series_id", "date", "sales", "promo"], train)
    write_csv(os.path.join(env, "test.csv"), ["id", "series_id", "date", "promo"], test)
    write_csv(os.path.join(env, "calendar.csv"), ["date", "holiday", "temperature"],
              [(d.isoformat(), cal.get(d, ""), temp[t]) for t, d in enumerate(dates)])
    write_csv("answers.csv", ["id", "series_id", "sales"], answers)
    write_csv("scales.csv", ["series_id", "scale"], scales)
    print(f"wrote {N_SERIES} series: {N_HIST} days of history, {HORIZON} to forecast")


if __name__ == "__main__":
    main()
