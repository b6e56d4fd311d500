"""Prepare the language-modelling task (hidden from agents).

The text is the Python standard library's own sources, which ship with the
system (/usr/lib/python3.11). Because they are readable inside the sandbox,
held-out text taken from them could simply be looked up, so this script
hides it behind two secrets that never leave scripts/ (this file's SEED):

- a secret split: whole packages (top-level modules or folders, so that
  near-identical sibling files stay on one side) go either to training or
  to the held-out set;
- a secret bijective substitution of the characters, applied to every split:
  each of the 97 characters (printable ASCII, tab and newline) is replaced by
  another one, so no held-out passage occurs verbatim anywhere on the system.

It writes, relative to the working directory (scripts/):
  ../env/train.txt       the training text, substituted (agent-visible)
  ../env/alphabet.json   the 97 characters, in the order a model's
                         distribution lists them (agent-visible)
  test.txt               N_SEGMENTS held-out passages of SEGMENT_CHARS
                         characters each, substituted, concatenated (hidden)
  key.json               the substitution and the files of each split, for
                         tests only (hidden; equivalent to this file's SEED)

Only the standard library's `random` is used (its streams are stable across
Python 3 versions), and files are read in sorted order, so the output is
byte-identical wherever the same stdlib sources are installed.
"""
import bisect
import json
import os
import random

SEED = 5_170_331_902_684
ROOT = "/usr/lib/python3.11"
# Folders that are not the standard library proper, or that other Debian
# packages ship (so that they may be absent), or whose files are machine
# generated and nearly identical to each other (the codec tables).
EXCLUDE_DIRS = {"dist-packages", "site-packages", "encodings", "distutils", "lib2to3",
                "test", "ensurepip", "venv", "idlelib", "tkinter", "turtledemo",
                "pydoc_data", "__pycache__"}
# Files that are configuration of this machine, not library code.
EXCLUDE_PREFIXES = ("_sysconfigdata", "sitecustomize")
ALPHABET = sorted([chr(c) for c in range(32, 127)] + ["\t", "\n"])
TEST_SHARE = 0.12        # share of the characters that go to held-out packages
N_SEGMENTS = 64          # held-out passages, scored as parallel streams
SEGMENT_CHARS = 640      # characters per passage


def sources():
    """(package, relative path, text) of every usable stdlib source file."""
    allowed = set(ALPHABET)
    out = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDE_DIRS)
        for name in sorted(filenames):
            if not name.endswith(".py") or name.startswith(EXCLUDE_PREFIXES):
                continue
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            rel = os.path.relpath(path, ROOT)
            try:
                with open(path, encoding="utf-8", newline="") as f:
                    text = f.read()
            except (UnicodeDecodeError, OSError):
                continue
            # Files with other characters (non-ASCII names in comments, form
            # feeds, CRLF) are left out rather than altered.
            if not text or not set(text) <= allowed:
                continue
            if not text.endswith("\n"):
                text += "\n"
            out.append((rel.split(os.sep)[0].removesuffix(".py"), rel, text))
    out.sort(key=lambda s: s[1])
    return out


def main():
    rng = random.Random(SEED)
    files = sources()
    if len(files) < 100:
        raise SystemExit(f"only {len(files)} usable source files under {ROOT}: is the Python 3.11 standard library installed?")

    # The secret split, by package.
    packages = sorted({p for p, _, _ in files})
    rng.shuffle(packages)
    total = sum(len(t) for _, _, t in files)
    size = {p: 0 for p in packages}
    for p, _, t in files:
        size[p] += len(t)
    test_pkgs, held = set(), 0
    for p in packages:
        if held >= TEST_SHARE * total:
            break
        if size[p] > 0.5 * TEST_SHARE * total:
            continue  # no single package dominates the held-out text
        test_pkgs.add(p)
        held += size[p]
    train_files = [f for f in files if f[0] not in test_pkgs]
    test_files = [f for f in files if f[0] in test_pkgs]

    # The secret substitution: a random permutation of the alphabet.
    image = ALPHABET[:]
    rng.shuffle(image)
    table = str.maketrans(dict(zip(ALPHABET, image)))

    # Held-out passages: one from each of N_SEGMENTS equal strides of the
    # held-out text, starting at a line start picked at random, and lying
    # within one file.
    test_text = "".join(t for _, _, t in test_files)
    ends, end = [], 0
    for _, _, t in test_files:
        end += len(t)
        ends.append(end)
    stride = len(test_text) // N_SEGMENTS
    if stride < 2 * SEGMENT_CHARS:
        raise SystemExit(f"held-out text too short: {len(test_text)} characters")
    segments = []
    for i in range(N_SEGMENTS):
        lo = i * stride
        starts = [j + 1 for j in range(lo, lo + stride) if test_text[j] == "\n"
                  and j + 1 + SEGMENT_CHARS <= ends[bisect.bisect_right(ends, j)]]
        if not starts:
            raise SystemExit(f"no passage fits in stride {i} of the held-out text")
        start = rng.choice(starts)
        segments.append(test_text[start:start + SEGMENT_CHARS])

    os.makedirs("../env", exist_ok=True)
    with open("../env/train.txt", "w", encoding="ascii", newline="") as f:
        f.write("".join(t for _, _, t in train_files).translate(table))
    with open("../env/alphabet.json", "w", encoding="ascii") as f:
        json.dump(ALPHABET, f)
        f.write("\n")
    with open("test.txt", "w", encoding="ascii", newline="") as f:
        f.write("".join(segments).translate(table))
    with open("key.json", "w", encoding="ascii") as f:
        json.dump({"substitution": dict(zip(ALPHABET, image)),
                   "train_files": [rel for _, rel, _ in train_files],
                   "test_files": [rel for _, rel, _ in test_files]}, f, indent=1)
        f.write("\n")
    print(f"{len(train_files)} training files ({sum(len(t) for _, _, t in train_files)} characters), "
          f"{len(test_files)} held-out files ({len(test_text)} characters) in {len(test_pkgs)} packages, "
          f"{N_SEGMENTS} held-out passages of {SEGMENT_CHARS} characters")


if __name__ == "__main__":
    main()
