"""Hidden scorer for the language-modelling task.

get_score(submission_folder) reads <submission_folder>/submission.npy (written
by the agent's train.py): for each of the N test contexts in
test_contexts.json, a row of log-probabilities for the character that follows
it, one column per character of ALPHABET. It returns the mean cross-entropy of
the hidden next characters (scripts/answers.json), in bits per character
(lower is better).

The scorer runs none of the submission's code: it only reads an array, so the
hidden characters stay out of the reach of anything the agent wrote, and the
same file always gets the same score. Each row is normalised here (a
log-softmax in float64), so rows that do not sum to one cannot gain anything.
Invalid submissions raise ValueError/FileNotFoundError with a clear message.
"""
import json
import math
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ANSWERS = os.path.join(HERE, "answers.json")
SUBMISSION_NAME = "submission.npy"
ALPHABET = "\n\f" + "".join(chr(c) for c in range(32, 127))


def _read_answers():
    with open(ANSWERS) as f:
        chars = json.load(f)
    return np.array([ALPHABET.index(c) for c in chars])


def _read_submission(path, n):
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{SUBMISSION_NAME} not found in the workspace: run train.py so that it writes "
            f"{SUBMISSION_NAME} (a float array of shape ({n}, {len(ALPHABET)})) next to train.py"
        )
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{SUBMISSION_NAME} is not a plain numpy array file ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{SUBMISSION_NAME} must hold one array (np.save), not an archive (np.savez)")
    if arr.shape != (n, len(ALPHABET)):
        raise ValueError(
            f"{SUBMISSION_NAME} has shape {arr.shape}, expected ({n}, {len(ALPHABET)}): "
            f"one row per test context, one column per character of the alphabet"
        )
    if arr.dtype.kind != "f":
        raise ValueError(f"{SUBMISSION_NAME} must hold floating-point log-probabilities, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise ValueError(
            f"{SUBMISSION_NAME} has {bad} NaN or infinite values; give every character a finite "
            f"log-probability (clip them, e.g. at -30)"
        )
    if np.all(arr >= 0) and np.allclose(arr.sum(axis=1), 1, atol=1e-3):
        raise ValueError(
            f"{SUBMISSION_NAME} looks like probabilities (non-negative rows that sum to 1): "
            f"it must hold natural-log probabilities (np.log of them)"
        )
    return arr


def get_score(submission_folder: str) -> float:
    answers = _read_answers()
    logits = _read_submission(os.path.join(submission_folder, SUBMISSION_NAME), len(answers))
    # Log-softmax per row, stable and in float64.
    top = logits.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    nll = log_norm - logits[np.arange(len(answers)), answers]
    bits = float(nll.mean() / math.log(2))
    print(f"cross-entropy: {bits:.6f} bits per character over {len(answers)} hidden characters")
    return bits
