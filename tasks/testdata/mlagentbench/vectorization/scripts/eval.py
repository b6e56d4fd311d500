# Hidden scorer laid out like MLAgentBench's vectorization eval: the score is
# the first figure of submission.csv, the seconds train.py reported, and a
# submission without one gets a huge time.
import csv
import os


def get_score(submission_folder="../env"):
    try:
        with open(os.path.join(submission_folder, "submission.csv"), newline="") as f:
            return float(next(csv.reader(f, delimiter=";"))[0])
    except Exception:
        return 1e10
