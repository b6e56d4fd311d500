"""Hidden scorer for the tabular-classification task.

get_score(submission_folder) reads <submission_folder>/submission.csv (written
by the agent's train.py), checks that it holds exactly one integer label in
0..3 for every test id, and returns the accuracy against scripts/answers.csv.
Invalid submissions raise ValueError/FileNotFoundError with a clear message.
Only the standard library is used, so scoring does not depend on the agent's
environment.
"""
import csv
import math
import os

ANSWERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "answers.csv")
SUBMISSION_NAME = "submission.csv"
VALID_LABELS = set(range(4))


def _parse_int(text, what, line_no):
    """Parse an integer, also accepting integral floats such as '3.0'."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value != int(value):  # NaN, infinite or fractional
        raise ValueError(f"{SUBMISSION_NAME} line {line_no}: {what} {text!r} is not an integer")
    return int(value)


def _read_answers():
    with open(ANSWERS, newline="") as f:
        return {int(row["id"]): int(row["label"]) for row in csv.DictReader(f)}


def _read_submission(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{SUBMISSION_NAME} not found in the workspace: run train.py so that it "
            f"writes {SUBMISSION_NAME} (columns id,label) next to train.py"
        )
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{SUBMISSION_NAME} is empty")
        header = [h.strip() for h in header]
        if header != ["id", "label"]:
            raise ValueError(
                f"{SUBMISSION_NAME} header must be exactly 'id,label', got {','.join(header)!r} "
                "(with pandas, write it with index=False)"
            )
        preds = {}
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue  # tolerate blank lines, e.g. a trailing one
            if len(row) != 2:
                raise ValueError(f"{SUBMISSION_NAME} line {line_no}: expected 2 fields, got {len(row)}")
            id_ = _parse_int(row[0], "id", line_no)
            label = _parse_int(row[1], "label", line_no)
            if id_ in preds:
                raise ValueError(f"{SUBMISSION_NAME} line {line_no}: id {id_} appears more than once")
            if label not in VALID_LABELS:
                raise ValueError(f"{SUBMISSION_NAME} line {line_no}: label {label} is not a class label 0..3")
            preds[id_] = label
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

    correct = sum(preds[i] == label for i, label in answers.items())
    accuracy = correct / len(answers)
    print(f"accuracy: {accuracy:.6f} ({correct}/{len(answers)})")
    return accuracy
