# mlab's eval driver: imports the task's eval.py from its working directory
# (the scripts copy), calls get_score and writes the scores to the server
# behind a nonce read from stdin.
#
# Usage: python -I -B mlab_eval_driver.py ROUNDS SUBMISSION [STARTER]
#
# The submission's code runs as the same user as this driver (as a
# subprocess of eval.py). It must not forge, alter or suppress the result:
# - The driver makes itself non-dumpable before it reads the nonce, so other
#   processes of its uid can neither open /proc/<pid>/mem or /proc/<pid>/fd/*
#   nor ptrace it.
# - The result goes to a private close-on-exec copy of stdout; fd 1 and
#   sys.stdout become stderr before eval.py is imported, so nothing eval
#   prints or starts holds the result channel.
# Code that eval.py imports into this very process has the driver's power,
# like the eval's own: a task's eval must run submission code in a child.
# Python's -I keeps the submission folder, PYTHONPATH and user site-packages
# off sys.path.
import ctypes
import json
import math
import os
import signal
import sys
import time
import traceback

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36

libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
    sys.exit("mlab eval driver: prctl(PR_SET_DUMPABLE, 0) failed: errno %d" % ctypes.get_errno())
# Orphans of the processes eval starts become the driver's children, so that
# whatever one get_score call leaves running is killed before the next.
libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

result = os.fdopen(os.dup(1), "w")  # os.dup makes a non-inheritable fd
os.dup2(2, 1)
sys.stdout = sys.stderr
nonce = sys.stdin.readline().strip()
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.close(null)


def finish(obj):
    sys.stderr.flush()
    result.write("MLAB_RESULT %s %s\n" % (nonce, json.dumps(obj)))
    result.flush()
    # No atexit handlers or lingering threads of eval's can hold the exit.
    os._exit(0)


def builtin_name(x):
    """The type name of x when Python defines it, else None: names the
    submission or the eval made up are not repeated to the agent."""
    t = x if isinstance(x, type) else type(x)
    return t.__name__ if t.__module__ == "builtins" else None


def descendants():
    me, children = os.getpid(), {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [me]
    while todo:
        for pid in children.get(todo.pop(), ()):
            out.append(pid)
            todo.append(pid)
    return out


def reap():
    """Kill and reap every process the last get_score left behind, so that it
    cannot slow down the next one (the starter's, say)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = descendants()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        time.sleep(0.01)


rounds = int(sys.argv[1])
folders = [os.path.abspath(p) for p in sys.argv[2:]]
os.environ["PYTHONNOUSERSITE"] = "1"
sys.path.insert(0, os.getcwd())
import eval as task_eval  # noqa: E402


def score(folder):
    try:
        value = task_eval.get_score(folder)
    except BaseException as exc:
        traceback.print_exc()
        finish({"error": "raised", "type": builtin_name(exc)})
    if isinstance(value, bool):
        finish({"error": "not_a_number", "type": "bool"})
    try:
        value = float(value)
    except BaseException:
        traceback.print_exc()
        finish({"error": "not_a_number", "type": builtin_name(value)})
    if not math.isfinite(value):
        finish({"error": "nonfinite", "value": repr(value)})
    return value


scores = [[] for _ in folders]
first = True
for r in range(rounds):
    # Alternate which folder goes first, so that neither always runs on a
    # warmer (or colder) machine.
    order = list(range(len(folders)))
    if r % 2:
        order.reverse()
    for i in order:
        if not first:
            reap()
        first = False
        scores[i].append(score(folders[i]))
        print("mlab: round %d of %d, %s: %r" % (r + 1, rounds, sys.argv[2 + i], scores[i][-1]), file=sys.stderr)
finish({"scores": scores[0], "starter": scores[1] if len(scores) > 1 else []})
