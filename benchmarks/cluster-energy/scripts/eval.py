"""Hidden scorer for the cluster-energy task.

get_score(submission_folder) reads <submission_folder>/submission.csv (written
by the agent's train.py), checks that it holds exactly one finite energy for
every test id, and returns the root-mean-square error against
scripts/answers.csv (lower is better). Invalid submissions raise
ValueError/FileNotFoundError with a clear message. Only the standard library
is used, and the sum is exact (math.fsum, in id order), so the same
submission always gets the same score.
"""
import csv
import math
import os

ANSWERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "answers.csv")
SUBMISSION_NAME = "submission.csv"


def _read_answers():
    with open(ANSWERS, newline="") as f:
        return {int(row["id"]): float(row["energy"]) for row in csv.DictReader(f)}


def _parse_id(text, line_no):
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{SUBMISSION_NAME} line {line_no}: id {text!r} is not an integer")
    return int(value)


def _parse_energy(text, line_no):
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{SUBMISSION_NAME} line {line_no}: energy {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{SUBMISSION_NAME} line {line_no}: energy {text.strip()!r} is not finite")
    return value


def _read_submission(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{SUBMISSION_NAME} not found in the workspace: run train.py so that it "
            f"writes {SUBMISSION_NAME} (columns id,energy) next to train.py"
        )
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{SUBMISSION_NAME} is empty")
        header = [h.strip() for h in header]
        if header != ["id", "energy"]:
            raise ValueError(
                f"{SUBMISSION_NAME} header must be exactly 'id,energy', got {','.join(header)!r} "
                "(with pandas, write it with index=False)"
            )
        preds = {}
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue  # tolerate blank lines, e.g. a trailing one
            if len(row) != 2:
                raise ValueError(f"{SUBMISSION_NAME} line {line_no}: expected 2 fields, got {len(row)}")
            id_ = _parse_id(row[0], line_no)
            if id_ in preds:
                raise ValueError(f"{SUBMISSION_NAME} line {line_no}: id {id_} appears more than once")
            preds[id_] = _parse_energy(row[1], line_no)
    return preds


def get_score(submission_folder: str) -> float:
    answers = _read_answers()
    preds = _read_submission(os.path.join(submission_folder, SUBMISSION_NAME))

    unknown = sorted(set(preds) - set(answers))
    if unknown:
        raise ValueError(
            f"{SUBMISSION_NAME} has {len(unknown)} ids that are not in test.csv, e.g. {unknown[:5]}"
        )
    missing = sorted(set(answers) - set(preds))
    if missing:
        raise ValueError(
            f"{SUBMISSION_NAME} lacks predictions for {len(missing)} of {len(answers)} test ids, "
            f"e.g. {missing[:5]}"
        )

    squared = math.fsum((preds[i] - answers[i]) ** 2 for i in sorted(answers))
    rmse = math.sqrt(squared / len(answers))
    print(f"rmse: {rmse:.6f} over {len(answers)} clusters")
    return rmse
