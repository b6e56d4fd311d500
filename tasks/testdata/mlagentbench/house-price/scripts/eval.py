# The score is the mean absolute error of SalePrice, as in MLAgentBench's
# house-price eval.
import csv
import os


def read(path):
    with open(path, newline="") as f:
        return [float(r["SalePrice"]) for r in csv.DictReader(f)]


def get_score(submission_folder="../env"):
    pred = read(os.path.join(submission_folder, "submission.csv"))
    true = read(os.path.join(os.path.dirname(__file__), "answer.csv"))
    return sum(abs(p - t) for p, t in zip(pred, true)) / len(true)
