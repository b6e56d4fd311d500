"""Check the built-in benchmark tasks end to end (stdlib + numpy only).

For every task it:
  1. copies env/ to a temp dir and runs the baseline train.py there
     (/usr/bin/python3, cwd = that dir),
  2. scores it the way the mlab server does: scripts/ is copied to another temp
     dir and `/usr/bin/python3 -I -c <driver>` runs with cwd = that copy,
     importing eval and calling eval.get_score(<submission dir>),
  3. repeats with reference/train.py in place of train.py,
  4. checks that invalid submissions make get_score raise,
and prints the baseline and reference scores and the improvement, signed by
the task's direction. It exits non-zero if any check fails.

Usage: /usr/bin/python3 benchmarks/verify_tasks.py [task ...]
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
MIN_IMPROVEMENT = 0.10
MAX_TASK_BYTES = 1 << 20

# Mirrors the server's driver. Under -I the cwd is not on sys.path, so the
# driver has to add the scripts copy itself before importing eval.
DRIVER = r"""
import json, os, sys
sys.path.insert(0, os.getcwd())
import eval
score = eval.get_score(sys.argv[1])
print("MLAB_SCORE " + json.dumps(float(score)))
"""


def read_task_yaml(task_dir):
    """Tiny reader for the two flat keys we need (avoids a YAML dependency)."""
    meta = {}
    with open(os.path.join(task_dir, "task.yaml")) as f:
        for line in f:
            m = re.match(r"^(direction|baseline|metric):\s*(\S+)", line)
            if m:
                meta[m.group(1)] = m.group(2)
    return meta


def make_workspace(task_dir, train_src=None):
    ws = tempfile.mkdtemp(prefix="mlab_verify_ws_")
    shutil.copytree(os.path.join(task_dir, "env"), ws, dirs_exist_ok=True)
    if train_src is not None:
        shutil.copy(train_src, os.path.join(ws, "train.py"))
    return ws


def run_train(ws):
    start = time.perf_counter()
    proc = subprocess.run([PYTHON, "train.py"], cwd=ws, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"train.py failed in {ws}:\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc.stdout.strip()


def score(task_dir, submission):
    """Return (score or None, error text, seconds) from a driver run."""
    scripts = tempfile.mkdtemp(prefix="mlab_verify_scripts_")
    try:
        shutil.copytree(os.path.join(task_dir, "scripts"), scripts, dirs_exist_ok=True)
        start = time.perf_counter()
        proc = subprocess.run(
            [PYTHON, "-I", "-c", DRIVER, os.path.abspath(submission)],
            cwd=scripts, capture_output=True, text=True, timeout=900,
        )
        elapsed = time.perf_counter() - start
    finally:
        shutil.rmtree(scripts, ignore_errors=True)
    for line in proc.stdout.splitlines():
        if line.startswith("MLAB_SCORE "):
            return json.loads(line.split(" ", 1)[1]), "", elapsed
    lines = proc.stderr.strip().splitlines()
    return None, lines[-1] if lines else f"exit code {proc.returncode}", elapsed


def task_size(task_dir):
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(task_dir)
        for name in names
        if "__pycache__" not in root
    )


# --- invalid submissions, per task: (description, function(ws) that breaks it)

def _drop_file(name):
    def apply(ws):
        os.remove(os.path.join(ws, name))
    return apply


def _rewrite_submission(transform):
    def apply(ws):
        path = os.path.join(ws, "submission.csv")
        with open(path) as f:
            lines = f.read().splitlines()
        with open(path, "w") as f:
            f.write("\n".join(transform(lines)) + "\n")
    return apply


def _replace_in_train(old, new):
    def apply(ws):
        path = os.path.join(ws, "train.py")
        with open(path) as f:
            src = f.read()
        assert old in src, f"{old!r} not in train.py"
        with open(path, "w") as f:
            f.write(src.replace(old, new))
    return apply


INVALID = {
    "tabular-classification": [
        ("missing submission.csv", _drop_file("submission.csv")),
        ("one test id missing", _rewrite_submission(lambda lines: lines[:-1])),
        ("duplicated id", _rewrite_submission(lambda lines: lines + [lines[1]])),
        ("label out of range", _rewrite_submission(lambda lines: [lines[0], lines[1].split(",")[0] + ",11"] + lines[2:])),
        ("pandas index column", _rewrite_submission(lambda lines: ["," + lines[0]] + [f"{i},{l}" for i, l in enumerate(lines[1:])])),
    ],
    "numpy-speedup": [
        ("missing train.py", _drop_file("train.py")),
        ("compute() without row normalisation",
         _replace_in_train("out[i, j] /= row_sum", "pass")),
        ("compute() off by 1e-5 relative",
         _replace_in_train("return out", "return out * (1 + 1e-5)")),
        ("compute() returns float32",
         _replace_in_train("return out", "return out.astype(np.float32)")),
        ("compute() returns wrong shape",
         _replace_in_train("return out", "return out[:-1]")),
        ("train.py fails on import",
         _replace_in_train("import numpy as np", "import numpy as np\nraise ImportError('boom')")),
        ("compute() missing",
         _replace_in_train("def compute(", "def compute_renamed(")),
    ],
}


def verify(task):
    task_dir = os.path.join(HERE, task)
    meta = read_task_yaml(task_dir)
    direction = meta["direction"]
    ok = True
    print(f"== {task} (metric {meta['metric']}, {direction} is better)")

    results = {}
    for label, train_src in [("baseline", None), ("reference", os.path.join(task_dir, "reference", "train.py"))]:
        ws = make_workspace(task_dir, train_src)
        try:
            train_s, out = run_train(ws)
            value, err, eval_s = score(task_dir, ws)
        finally:
            shutil.rmtree(ws, ignore_errors=True)
        last = out.splitlines()[-1] if out else ""
        print(f"  {label:9s}: score {value!r}  (train.py {train_s:.2f} s: {last!r}; eval {eval_s:.2f} s)")
        if value is None:
            print(f"    FAIL: get_score raised: {err}")
            return False
        results[label] = value

    base, ref = results["baseline"], results["reference"]
    gain = (ref - base) if direction == "higher" else (base - ref)
    improvement = gain / abs(base)
    passed = improvement > MIN_IMPROVEMENT
    ok &= passed
    print(f"  improvement: {improvement:+.2%}  ({'ok' if passed else 'FAIL'}: needs > {MIN_IMPROVEMENT:.0%})")

    if "baseline" in meta:
        same = abs(float(meta["baseline"]) - base) < 1e-12
        ok &= same
        print(f"  task.yaml baseline {meta['baseline']} {'matches' if same else 'DIFFERS from'} the measured score")

    for desc, breaker in INVALID.get(task, []):
        ws = make_workspace(task_dir)
        try:
            if os.path.exists(os.path.join(ws, "train.py")):
                run_train(ws)
            breaker(ws)
            value, err, _ = score(task_dir, ws)
        finally:
            shutil.rmtree(ws, ignore_errors=True)
        rejected = value is None
        ok &= rejected
        print(f"  invalid ({desc}): {'rejected: ' + err if rejected else f'FAIL, scored {value}'}")

    size = task_size(task_dir)
    small = size < MAX_TASK_BYTES
    ok &= small
    print(f"  task folder size: {size / 1024:.0f} KiB ({'ok' if small else 'FAIL: over 1 MiB'})")
    print(f"  => {'PASS' if ok else 'FAIL'}")
    return ok


def main():
    tasks = sys.argv[1:] or sorted(
        name for name in os.listdir(HERE) if os.path.isfile(os.path.join(HERE, name, "task.yaml"))
    )
    results = [verify(task) for task in tasks]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
