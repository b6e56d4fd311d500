"""Generate the data of the tabular-regression task (taxi trip durations).

mlab runs this once per task, with the working directory set to scripts/ of a
private copy of the task folder. It writes the agent-visible data to
../env/train.csv and ../env/test.csv and the hidden answers to ./answers.csv.

The trips are synthetic, made with numpy only from SECRET_SEED below. This
file lives in scripts/, which agents never see, so nobody can regenerate the
data and read off the hidden test durations. Keep the seed private; changing
it, or anything else here, changes every score, so re-measure levels.json.

How a trip is made (none of this is told to the agent):
  * pickup and drop-off points (km on the city map) come from a mixture of a
    dense downtown, the wider city and a small airport cluster;
  * the streets form a grid turned by STREET_ANGLE, so the road distance is
    the Manhattan distance in the turned frame, times a detour factor;
  * the speed depends on the hour of day and the weekday (rush hours on
    weekdays, a midday slowdown at weekends, fast nights), on the weather and
    on how close the trip runs to the congested city centre;
  * the duration is a fixed overhead (larger at the airport, slightly larger
    for one vendor and for more passengers) plus distance / speed, times a
    log-normal noise, plus, for a few trips, a heavy-tailed (Pareto) delay;
  * some weather and passenger values are missing.
The pickup time is given as a text timestamp and the points as raw
coordinates: a model that uses the columns as they are sees neither the
distance nor the time of day, which carry most of the signal.
"""
import datetime
import os

import numpy as np

# Drawn once with secrets.randbits(63). Do not publish.
SECRET_SEED = 4461865098136193305

N_TRAIN = 8000
N_TEST = 4000
START = datetime.datetime(2023, 1, 2)  # a Monday
DAYS = 364
CENTRE = np.array([12.0, 9.0])
AIRPORT = np.array([23.5, 2.5])
STREET_ANGLE = np.deg2rad(29.0)
BASE_SPEED = 32.0  # km/h on an empty road
WEATHER = ["clear", "rain", "fog", "snow"]
WEATHER_SPEED = np.array([1.0, 0.82, 0.74, 0.58])
DELAY_RATE = 0.07  # share of trips hit by a heavy-tailed delay

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = os.path.join(os.path.dirname(HERE), "env")


def points(rng, n):
    """Pickup or drop-off points: downtown, wider city or airport."""
    kind = rng.choice(3, size=n, p=[0.6, 0.32, 0.08])
    p = np.empty((n, 2))
    for k, (centre, sd) in enumerate([(CENTRE, 2.5), (CENTRE + [1.0, 1.5], 6.0), (AIRPORT, 0.3)]):
        idx = kind == k
        p[idx] = centre + sd * rng.normal(size=(idx.sum(), 2))
    return np.clip(p, -5, 35), kind == 2


def pickup_times(rng, n):
    """Minutes since START: uniform days, hours peaked in the day and evening."""
    day = rng.integers(0, DAYS, size=n)
    hour = np.where(
        rng.random(n) < 0.75,
        rng.normal(13.5, 4.5, size=n),
        rng.uniform(0, 24, size=n),
    ) % 24
    return day * 1440 + np.floor(hour * 60).astype(int)


def weather_of(rng, day):
    """Weather code per trip: snow only in winter, fog in autumn."""
    month = ((day % 364) // 30.4).astype(int)  # 0..11, roughly
    winter = np.isin(month, [0, 1, 10, 11])
    autumn = np.isin(month, [8, 9, 10])
    p = np.tile([0.64, 0.26, 0.04, 0.06], (len(day), 1))
    p[~winter, 3] = 0.0
    p[autumn, 2] = 0.12
    p /= p.sum(1, keepdims=True)
    return (p.cumsum(1) > rng.random((len(day), 1))).argmax(1)


def speed_factor(hour, weekday):
    weekend = weekday >= 5
    rush = np.where(
        weekend,
        0.2 * np.exp(-0.5 * ((hour - 14.0) / 3.0) ** 2),
        0.38 * np.exp(-0.5 * ((hour - 8.25) / 1.1) ** 2)
        + 0.42 * np.exp(-0.5 * ((hour - 17.5) / 1.4) ** 2),
    )
    night_dist = np.minimum(np.abs(hour - 3.0), 24 - np.abs(hour - 3.0))
    night = 0.28 * np.exp(-0.5 * (night_dist / 2.0) ** 2)
    return (1 - rush) * (1 + night)


def durations(rng, pick, drop, at_airport, minutes, weather, vendor, passengers):
    d = drop - pick
    c, s = np.cos(STREET_ANGLE), np.sin(STREET_ANGLE)
    road = 1.08 * (np.abs(c * d[:, 0] + s * d[:, 1]) + np.abs(-s * d[:, 0] + c * d[:, 1])) + 0.15
    hour = (minutes % 1440) / 60.0
    weekday = (minutes // 1440) % 7
    mid = (pick + drop) / 2 - CENTRE
    congestion = 1 - 0.42 * np.exp(-0.5 * (mid**2).sum(1) / 3.2**2)
    speed = BASE_SPEED * speed_factor(hour, weekday) * WEATHER_SPEED[weather] * congestion
    overhead = 1.2 + 4.0 * at_airport + 0.8 * (vendor == 1) + 0.35 * (passengers - 1)
    minutes_driving = 60 * road / speed
    y = (overhead + minutes_driving) * np.exp(rng.normal(0, 0.16, size=len(road)))
    delayed = rng.random(len(road)) < DELAY_RATE
    y = y + delayed * 4.0 * (rng.pareto(1.4, size=len(road)) + 0.5)
    return np.minimum(y, 300.0)


def fmt(v, decimals):
    text = f"{v:.{decimals}f}"
    return "0" if decimals and float(text) == 0 else text  # no "-0.00"


def main():
    rng = np.random.default_rng(SECRET_SEED)
    n = N_TRAIN + N_TEST
    pick, pick_air = points(rng, n)
    drop, drop_air = points(rng, n)
    minutes = pickup_times(rng, n)
    weather = weather_of(rng, minutes // 1440)
    vendor = (rng.random(n) < 0.45).astype(int)
    passengers = rng.choice(np.arange(1, 7), size=n, p=[0.62, 0.18, 0.07, 0.06, 0.04, 0.03])
    payment = (rng.random(n) < 0.3).astype(int)
    y = durations(rng, pick, drop, pick_air | drop_air, minutes, weather, vendor, passengers)

    weather_missing = rng.random(n) < 0.10
    passengers_missing = rng.random(n) < 0.04
    stamps = [(START + datetime.timedelta(minutes=int(m))).strftime("%Y-%m-%d %H:%M:%S") for m in minutes]

    def row(i):
        return [
            stamps[i],
            "AB"[vendor[i]],
            "" if passengers_missing[i] else str(passengers[i]),
            fmt(pick[i, 0], 3),
            fmt(pick[i, 1], 3),
            fmt(drop[i, 0], 3),
            fmt(drop[i, 1], 3),
            "" if weather_missing[i] else WEATHER[weather[i]],
            ["card", "cash"][payment[i]],
        ]

    header = ["pickup_datetime", "vendor", "passengers", "pickup_x", "pickup_y",
              "dropoff_x", "dropoff_y", "weather", "payment"]
    # Rows are i.i.d., so the last N_TEST make the test set, with ids 0..N_TEST-1.
    os.makedirs(ENV, exist_ok=True)
    with open(os.path.join(ENV, "train.csv"), "w", newline="\n") as f:
        f.write(",".join(header + ["duration"]) + "\n")
        for i in range(N_TRAIN):
            f.write(",".join(row(i) + [fmt(y[i], 2)]) + "\n")
    with open(os.path.join(ENV, "test.csv"), "w", newline="\n") as f:
        f.write(",".join(["id"] + header) + "\n")
        for k, i in enumerate(range(N_TRAIN, n)):
            f.write(",".join([str(k)] + row(i)) + "\n")
    with open(os.path.join(HERE, "answers.csv"), "w", newline="\n") as f:
        f.write("id,duration\n")
        for k, i in enumerate(range(N_TRAIN, n)):
            f.write(f"{k},{fmt(y[i], 2)}\n")
    print(f"train: {N_TRAIN} trips, test: {N_TEST} trips; duration median {np.median(y):.1f} min, "
          f"mean {y.mean():.1f}, max {y.max():.1f}")


if __name__ == "__main__":
    main()
