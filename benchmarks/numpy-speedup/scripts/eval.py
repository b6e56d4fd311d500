"""Hidden scorer for the numpy-speedup task.

get_score(submission_folder) times the submission's compute() (defined in
<submission_folder>/train.py) on fresh random inputs and returns the median
wall time in seconds over REPEATS runs (lower is better). It raises if the
submission cannot be loaded, fails, times out, or returns a result that
differs from this file's own reference implementation.

Why it is built this way (so the timing cannot be gamed):
- Every run uses an input drawn from a new random seed, so no output can be
  precomputed or cached.
- Each run happens in a fresh child process. The child imports train.py and
  reports "ready" before the clock starts, so import time is not counted;
  only then does the parent write the input file and send the child the
  paths of the input and output files. A submission therefore cannot start
  work before the clock starts.
- The clock is the parent's: it runs from just before the input is written
  until the child process has exited (right after saving the output), so
  patching time functions in the child has no effect.
- The result is checked against an independent vectorised implementation.
"""
import json
import os
import secrets
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

N, D = 450, 16  # input shape; the unmodified baseline takes about 1 s
REPEATS = 3
TIMEOUT_S = 120.0  # per run, covering both import and compute
RTOL, ATOL = 1e-6, 1e-9

# Code run by the child process, with cwd = the submission folder. It is given
# via -c so that sys.path[0] is the cwd and train.py can import its own
# helper modules from the submission folder.
CHILD_CODE = r"""
import importlib.util, json, os, sys

# Keep the original stdout as a private channel to the parent; whatever the
# submission prints goes to stderr instead and cannot disturb the protocol.
proto = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr

train_path = sys.argv[1]
spec = importlib.util.spec_from_file_location("submission_train", train_path)
module = importlib.util.module_from_spec(spec)
sys.modules["submission_train"] = module
spec.loader.exec_module(module)
compute = getattr(module, "compute", None)
if not callable(compute):
    sys.exit("train.py does not define a function compute(x)")
import numpy as np

proto.write("ready\n")
proto.flush()
proto.close()
line = sys.stdin.readline()
if not line:
    sys.exit("parent closed stdin before the go signal")
in_path, out_path = json.loads(line)
x = np.load(in_path, allow_pickle=False)
y = compute(x)
np.save(out_path, np.asarray(y), allow_pickle=False)
# Exit at once: the parent's clock stops when this process is gone, and a
# normal interpreter shutdown (tens of ms with numpy loaded) would only add
# noise that hides real differences between fast submissions.
sys.stderr.flush()
os._exit(0)
"""


def reference(x: np.ndarray) -> np.ndarray:
    """Row-normalised RBF kernel exp(-||xi - xj||^2 / d), written independently."""
    d = x.shape[1]
    diff = x[:, None, :] - x[None, :, :]
    sq_dist = np.einsum("ijk,ijk->ij", diff, diff)
    k = np.exp(-sq_dist / d)
    return k / k.sum(axis=1, keepdims=True)


def _kill_group(proc):
    """Kill the child and anything it started (it leads its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _tail(path, limit=3000):
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - limit))
        return f.read().decode("utf-8", "replace").strip()


def _check_output(y, x):
    if y.dtype != np.float64:
        raise ValueError(f"result incorrect: compute() must return float64 values, got dtype {y.dtype}")
    if y.shape != (x.shape[0], x.shape[0]):
        raise ValueError(f"result incorrect: expected shape {(x.shape[0], x.shape[0])}, got {y.shape}")
    expected = reference(x)
    if not np.all(np.isfinite(y)):
        raise ValueError("result incorrect: compute() returned NaN or infinite values")
    if not np.allclose(y, expected, rtol=RTOL, atol=ATOL):
        abs_err = np.abs(y - expected)
        rel_err = abs_err / np.maximum(np.abs(expected), 1e-300)
        bad = int(np.sum(abs_err > ATOL + RTOL * np.abs(expected)))
        raise ValueError(
            f"result incorrect: {bad} of {y.size} entries differ from the expected output "
            f"beyond rtol={RTOL}, atol={ATOL} (max abs error {abs_err.max():.3e}, "
            f"max rel error {rel_err.max():.3e})"
        )


def _time_once(train_path, submission_folder, workdir, run):
    seed = secrets.randbits(63)
    x = np.random.default_rng(seed).standard_normal((N, D))
    in_path = os.path.join(workdir, f"input_{run}.npy")
    out_path = os.path.join(workdir, f"output_{run}.npy")
    err_path = os.path.join(workdir, f"stderr_{run}.txt")

    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD_CODE, train_path],
            cwd=submission_folder,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + TIMEOUT_S

        # Wait for "ready" (train.py imported) without blocking forever.
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        ready = b""
        while not ready.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"importing train.py took longer than {TIMEOUT_S:.0f} s")
            if not sel.select(timeout=remaining):
                continue
            chunk = os.read(proc.stdout.fileno(), 64)
            if not chunk:  # the child closed its channel, normally by dying
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
                raise RuntimeError(
                    f"loading train.py failed (exit code {proc.returncode}):\n{_tail(err_path)}"
                )
            ready += chunk
        sel.close()
        if ready.strip() != b"ready":
            raise RuntimeError(f"unexpected message from the child process: {ready!r}")

        # The clock starts before the input exists, so nothing can run early.
        start = time.perf_counter()
        np.save(in_path, x, allow_pickle=False)
        try:
            proc.stdin.write((json.dumps([in_path, out_path]) + "\n").encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the child already died; its exit code and stderr are reported below
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"compute() did not finish within {TIMEOUT_S:.0f} s") from None
        elapsed = time.perf_counter() - start
    finally:
        _kill_group(proc)  # also reaps leftover grandchildren, e.g. worker pools
        for pipe in (proc.stdout, proc.stdin):
            try:
                pipe.close()
            except OSError:  # e.g. unflushed data to a dead child
                pass

    if proc.returncode != 0:
        raise RuntimeError(f"compute() failed (exit code {proc.returncode}):\n{_tail(err_path)}")
    if not os.path.isfile(out_path):
        raise RuntimeError("the child process exited without saving the output of compute()")
    try:
        y = np.load(out_path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"result incorrect: compute() must return a numeric array ({exc})") from None
    _check_output(y, x)
    return elapsed


def get_score(submission_folder: str) -> float:
    submission_folder = os.path.abspath(submission_folder)
    train_path = os.path.join(submission_folder, "train.py")
    if not os.path.isfile(train_path):
        raise FileNotFoundError("train.py not found in the submission folder")

    times = []
    with tempfile.TemporaryDirectory(prefix="mlab_speedup_eval_") as workdir:
        for run in range(REPEATS):
            elapsed = _time_once(train_path, submission_folder, workdir, run)
            print(f"run {run + 1}/{REPEATS}: {elapsed:.4f} s (output verified)")
            times.append(elapsed)
    score = statistics.median(times)
    print(f"median time: {score:.4f} s")
    return score
