"""Hidden scorer for the language-modelling task.

get_score(submission_folder) loads the submission's model from its
predict.py and returns its cross-entropy on the held-out text (test.txt
beside this file), in bits per character: lower is better.

The eval computes the loss itself and trusts nothing the submission says:
- The held-out text is N_SEGMENTS passages, read as that many parallel
  streams. At each step the model must give, for every stream, a full
  probability distribution over the alphabet for the next character; only
  then is it shown that character. It never sees a character before it has
  committed to its distribution for it, so it cannot peek ahead.
- Each distribution must be finite, non-negative and sum to 1 (within
  SUM_TOLERANCE; it is then renormalised), so probability 1 everywhere is
  not a way out. The eval reads the true character's probability from it.
- The model runs in a child process that cannot read the held-out text: it
  applies a Landlock rule set that lets it read the whole system except the
  eval's own workspace (this folder, holding test.txt and the secret of
  prepare.py), where it may read only the submission folder. Where the
  kernel lacks Landlock the eval refuses to run the model rather than score
  it unprotected. (The parent, which holds the text, is the mlab eval
  driver: non-dumpable, so the child cannot read its memory either.)
- The child talks to the parent over a private pipe; what the submission
  prints goes to stderr.

Scoring is deterministic for a deterministic model: the same passages are
fed in the same order, and the loss is summed exactly (math.fsum).
"""
import json
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# The characters, in the order of a distribution (env/alphabet.json).
ALPHABET = sorted([chr(c) for c in range(32, 127)] + ["\t", "\n"])
N_SEGMENTS = 64
SEGMENT_CHARS = 640
SUM_TOLERANCE = 1e-3
MIN_PROB = 2.0 ** -20       # a probability below this counts as this (20 bits)
LOAD_TIMEOUT_S = 120.0      # importing predict.py and load()
SCORE_TIMEOUT_S = 300.0     # all the steps together

# Run by the child process, with cwd = the submission folder:
# argv = [submission folder, private temp folder].
CHILD_CODE = r"""
import ctypes, os, sys

folder, tmp = sys.argv[1], sys.argv[2]
proto_out = os.fdopen(os.dup(1), "wb")
proto_in = os.fdopen(os.dup(0), "rb")
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.dup2(2, 1)
sys.stdout = sys.stderr


def landlock(folder, tmp):
    # Lets this process read everything but the eval workspace (the parent
    # of the submission folder), where only the submission folder is
    # readable. Landlock grants by hierarchy, so the rules name every
    # sibling along the path from / down to the workspace.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    create, add, restrict = 444, 445, 446  # the same on every architecture
    abi = libc.syscall(create, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        sys.exit("mlab eval: this kernel has no Landlock (errno %d): the model cannot be "
                 "kept from the held-out text, so it is not run" % ctypes.get_errno())
    read_file, read_dir, refer = 1 << 2, 1 << 3, 1 << 13
    handled = read_file | read_dir | (refer if abi >= 2 else 0)

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("handled_access_fs", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    attr = RulesetAttr(handled)
    rs = libc.syscall(create, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0))
    if rs < 0:
        sys.exit("mlab eval: landlock_create_ruleset failed: errno %d" % ctypes.get_errno())

    def allow(path):
        try:
            fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return
        try:
            import stat
            is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
            rule = PathBeneath(read_file | (read_dir if is_dir else 0), fd)
            libc.syscall(add, ctypes.c_int(rs), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0))
        finally:
            os.close(fd)

    workspace = os.path.dirname(folder)
    chain, p = [], workspace
    while True:
        chain.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    chain.reverse()  # "/", ..., workspace
    for here, below in zip(chain, chain[1:]):
        for name in os.listdir(here):
            path = os.path.join(here, name)
            if path != below:
                allow(path)
    allow(folder)
    allow(tmp)
    PR_SET_NO_NEW_PRIVS = 38
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        sys.exit("mlab eval: prctl(PR_SET_NO_NEW_PRIVS) failed: errno %d" % ctypes.get_errno())
    if libc.syscall(restrict, ctypes.c_int(rs), ctypes.c_uint32(0)) != 0:
        sys.exit("mlab eval: landlock_restrict_self failed: errno %d" % ctypes.get_errno())
    os.close(rs)


landlock(folder, tmp)
os.environ["TMPDIR"] = tmp
sys.path.insert(0, folder)
import importlib.util
import json
import numpy as np

path = os.path.join(folder, "predict.py")
spec = importlib.util.spec_from_file_location("predict", path)
predict = importlib.util.module_from_spec(spec)
sys.modules["predict"] = predict
spec.loader.exec_module(predict)
if not callable(getattr(predict, "load", None)):
    sys.exit("predict.py does not define a function load(folder)")
model = predict.load(folder)
for name in ("start", "predict", "observe"):
    if not callable(getattr(model, name, None)):
        sys.exit("the object load() returned has no method %s()" % name)
proto_out.write(b"ready\n")
proto_out.flush()

size = None
while True:
    line = proto_in.readline()
    if not line:
        break
    msg = json.loads(line)
    if "start" in msg:
        n, vocab = msg["start"]
        size = (n, vocab)
        model.start(n)
    else:
        model.observe(msg["observe"])
    p = np.asarray(model.predict(), dtype=np.float64)
    if p.shape != size:
        sys.exit("predict() returned an array of shape %s, want %s (streams, alphabet size)" % (p.shape, size))
    proto_out.write(np.ascontiguousarray(p, dtype="<f8").tobytes())
    proto_out.flush()
sys.stderr.flush()
os._exit(0)
"""


def _kill_group(proc):
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


class _Child:
    """The submission's model in a child process, behind a pipe."""

    def __init__(self, folder, workdir):
        self.err_path = os.path.join(workdir, "stderr.txt")
        tmp = os.path.join(workdir, "tmp")
        os.mkdir(tmp)
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", CHILD_CODE, folder, tmp],
                cwd=folder, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                start_new_session=True,
            )
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)

    def read(self, n, deadline, what):
        """Exactly n bytes from the child, before the deadline."""
        buf = bytearray()
        while len(buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the model took too long ({what})")
            if not self.sel.select(timeout=remaining):
                continue
            chunk = os.read(self.proc.stdout.fileno(), min(n - len(buf), 1 << 20))
            if not chunk:
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
                raise RuntimeError(f"the model's process ended ({what}, exit code {self.proc.returncode}):\n{_tail(self.err_path)}")
            buf += chunk
        return bytes(buf)

    def send(self, msg):
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # the next read reports how the child ended

    def close(self):
        _kill_group(self.proc)
        self.sel.close()
        for pipe in (self.proc.stdout, self.proc.stdin):
            try:
                pipe.close()
            except OSError:
                pass


def load_test(path=None):
    """The held-out passages, as N_SEGMENTS strings."""
    with open(path or os.path.join(HERE, "test.txt"), encoding="ascii", newline="") as f:
        text = f.read()
    if len(text) != N_SEGMENTS * SEGMENT_CHARS:
        raise RuntimeError(f"test.txt has {len(text)} characters, want {N_SEGMENTS * SEGMENT_CHARS}: prepare the task again")
    return [text[i * SEGMENT_CHARS:(i + 1) * SEGMENT_CHARS] for i in range(N_SEGMENTS)]


def get_score(submission_folder: str) -> float:
    folder = os.path.realpath(submission_folder)
    if not os.path.isfile(os.path.join(folder, "predict.py")):
        raise FileNotFoundError("predict.py not found in the submission folder")
    alphabet = ALPHABET
    index = {c: i for i, c in enumerate(alphabet)}
    segments = load_test()
    n, vocab = len(segments), len(alphabet)
    truth = np.array([[index[c] for c in s] for s in segments])  # (n, SEGMENT_CHARS)
    rows = np.arange(n)

    workdir = tempfile.mkdtemp(prefix="mlab_lm_eval_")
    child = _Child(folder, workdir)
    bits = []
    try:
        ready = child.read(6, time.monotonic() + LOAD_TIMEOUT_S, "loading predict.py")
        if ready != b"ready\n":
            raise RuntimeError(f"unexpected message from the model's process: {ready!r}")
        deadline = time.monotonic() + SCORE_TIMEOUT_S
        child.send({"start": [n, vocab]})
        for t in range(SEGMENT_CHARS):
            raw = child.read(8 * n * vocab, deadline, f"step {t + 1} of {SEGMENT_CHARS}")
            p = np.frombuffer(raw, dtype="<f8").reshape(n, vocab)
            if not np.all(np.isfinite(p)):
                raise ValueError(f"step {t + 1}: predict() returned NaN or infinite probabilities")
            if np.any(p < 0):
                raise ValueError(f"step {t + 1}: predict() returned negative probabilities")
            total = p.sum(axis=1)
            worst = float(np.max(np.abs(total - 1.0)))
            if worst > SUM_TOLERANCE:
                raise ValueError(f"step {t + 1}: a distribution returned by predict() sums to "
                                 f"{total[np.argmax(np.abs(total - 1.0))]:.6f}, not 1 (tolerance {SUM_TOLERANCE})")
            q = np.maximum(p[rows, truth[:, t]] / total, MIN_PROB)
            bits.extend((-np.log2(q)).tolist())
            if t + 1 < SEGMENT_CHARS:
                child.send({"observe": "".join(s[t] for s in segments)})
    finally:
        child.close()
        shutil.rmtree(workdir, ignore_errors=True)
    score = math.fsum(bits) / len(bits)
    print(f"{len(bits)} characters scored: {score:.4f} bits per character")
    return score
