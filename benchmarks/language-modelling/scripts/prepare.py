"""Generate the language-modelling data (hidden from agents).

Run by mlab once per task with the working directory scripts/ of a private
copy of the task folder. Writes the agent's data into ../env/ and the hidden
answers into ./answers.json.

The text is Python source code made from the Python standard library that
ships with the system, but none of it is on the system: the statements of the
standard library's functions become templates (their local names abstracted
to slots), and each document is a new module drawn from a fixed secret seed,
with new names, new nesting and a new order of statements. Texts taken
verbatim from files on the system could be recovered by looking them up in
those files, and so could any fixed recoding of them (a substitution cipher
keeps the pattern of repeated letters, which a lookup can match); a drawn
text cannot, so the hidden next characters are known only to this folder.

Outputs:
- ../env/train.txt, ../env/valid.txt: documents separated by a form feed
  ("\\f"), for training and validation;
- ../env/test_contexts.json: one context per test document (up to
  CONTEXT characters of it before a hidden position, preceded by "\\f" when
  it starts at the document's start);
- ./answers.json: the hidden character at each of those positions.
"""
import ast
import builtins
import json
import os
import re
import sysconfig

import numpy as np

SEED = 0x7A3C_51D2_9E04_B86F  # the secret that, with this file, makes the data
TRAIN_CHARS = 4_000_000
VALID_CHARS = 200_000
N_TEST = 4000
CONTEXT = 512
MIN_POSITION = 16  # hidden positions start this far into a document
SEP = "\f"
ALPHABET = "\n" + SEP + "".join(chr(c) for c in range(32, 127))

KEEP = set(dir(builtins)) | {"self", "cls"}
MAX_TEMPLATE = 88
SLOT = re.compile(r"__(\d+)__")
SIMPLE = (ast.Assign, ast.AugAssign, ast.Expr, ast.Return, ast.Raise, ast.Assert, ast.Pass,
          ast.Break, ast.Continue, ast.Delete)


class _Abstract(ast.NodeTransformer):
    """Renames local names to numbered slots, noting which are assigned."""

    def __init__(self):
        self.slots = {}
        self.stored = set()

    def _slot(self, name, store):
        k = self.slots.setdefault(name, len(self.slots))
        if store:
            self.stored.add(k)
        return f"__{k}__"

    def visit_Name(self, node):
        if node.id in KEEP:
            return node
        return ast.Name(id=self._slot(node.id, isinstance(node.ctx, ast.Store)), ctx=node.ctx)

    def visit_arg(self, node):
        node.arg = self._slot(node.arg, True)
        node.annotation = None
        return node


def _template(node, first_line=False):
    """(text, stored slots, number of slots) of node with its names
    abstracted, or None when it does not make a good one-line template."""
    abstract = _Abstract()
    text = ast.unparse(abstract.visit(node))
    if first_line:
        text = text.split("\n")[0]
    if len(text) > MAX_TEMPLATE or "\n" in text or not text.isascii() or "\\" in text:
        return None
    if any(c not in ALPHABET for c in text) or len(abstract.slots) > 5:
        return None
    return text, tuple(sorted(abstract.stored)), len(abstract.slots)


def _header(node):
    """The first line of a compound statement, body dropped."""
    node = ast.parse(ast.unparse(node)).body[0]  # a private copy
    node.body = [ast.Pass()]
    if hasattr(node, "orelse"):
        node.orelse = []
    return _template(node, first_line=True)


def _handler(h):
    if h.type is None:
        return None
    t = _template(h.type)
    return None if t is None else ("except " + t[0], t[1], t[2])


class Pools:
    """Templates from the standard library, with their real frequencies."""

    def __init__(self, stdlib):
        self.simple, self.loop_only, self.ret = [], [], []
        self.if_, self.while_, self.for_, self.with_, self.except_ = [], [], [], [], []
        self.imports, self.local_names, self.bases = [], [], []
        files = sorted(f for f in os.listdir(stdlib) if f.endswith(".py"))
        if len(files) < 100:
            raise SystemExit(f"only {len(files)} source files in {stdlib}: is the Python standard library installed?")
        for name in files:
            with open(os.path.join(stdlib, name), encoding="utf-8") as f:
                try:
                    tree = ast.parse(f.read())
                except SyntaxError:
                    continue
            for node in tree.body:
                if isinstance(node, (ast.Import, ast.ImportFrom)) and node.col_offset == 0:
                    text = ast.unparse(node)
                    if len(text) <= MAX_TEMPLATE and text.isascii():
                        self.imports.append(text)
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    for b in node.bases:
                        if isinstance(b, ast.Name):
                            self.bases.append(b.id)
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self._function(node)

    def _function(self, fn):
        for node in ast.walk(fn):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id not in KEEP:
                self.local_names.append(node.id)
        for node in ast.walk(fn):
            if node is fn:
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            if isinstance(node, SIMPLE):
                if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                    continue  # docstrings
                t = _template(node)
                if t is None:
                    continue
                if isinstance(node, ast.Return):
                    self.ret.append(t)
                elif isinstance(node, (ast.Break, ast.Continue)):
                    self.loop_only.append(t)
                else:
                    self.simple.append(t)
            elif isinstance(node, ast.If):
                t = _template(node.test)
                if t:
                    self.if_.append(t)
            elif isinstance(node, ast.While):
                t = _template(node.test)
                if t:
                    self.while_.append(t)
            elif isinstance(node, ast.For):
                t = _header(node)
                if t:
                    self.for_.append(t)
            elif isinstance(node, ast.With):
                t = _header(node)
                if t:
                    self.with_.append(t)
            elif isinstance(node, ast.Try):
                for h in node.handlers:
                    t = _handler(h)
                    if t:
                        self.except_.append(t)


ONSETS = "b c d f g h j k l m n p r s t v w z ch sh th st tr pl gr br cl fr".split()
VOWELS = "a e i o u a e i o ai ea ou io".split()
CODAS = ["", "", "", "n", "r", "s", "l", "x", "m", "t", "nd", "ck"]


class Module:
    """Draws one module: its names, its functions and classes."""

    def __init__(self, pools, rng):
        self.p, self.rng = pools, rng
        self.lines = []
        self.globals = []
        self.used = set()

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def word(self):
        n = 1 + int(self.rng.integers(3))
        return "".join(self.pick(ONSETS) + self.pick(VOWELS) + self.pick(CODAS) for _ in range(n))

    def fresh(self, kind="var"):
        """A name new to this module: a stdlib local name or a made-up word."""
        for _ in range(50):
            if kind == "class":
                name = "".join(self.word().capitalize() for _ in range(1 + int(self.rng.integers(2))))
            elif self.rng.random() < 0.35:
                name = self.pick(self.p.local_names)
            else:
                name = "_".join(self.word() for _ in range(1 + int(self.rng.random() < 0.4)))
            if name not in self.used and name not in KEEP and name.isidentifier():
                self.used.add(name)
                return name
        return f"v{len(self.used)}"

    def emit(self, depth, text):
        self.lines.append("    " * depth + text)

    def fill(self, template, scope):
        """The template with its slots named. A slot the template assigns
        gets a new name about half the time; the others mostly reuse names
        in scope, recent ones more often, so that names recur within a
        module, as in real code: a model can copy them from the context."""
        text, stored, n_slots = template
        names = []
        for k in range(n_slots):
            if k in stored and (self.rng.random() < 0.55 or not scope):
                name = self.fresh()
                scope.append(name)
            elif scope and self.rng.random() < 0.9:
                recent = scope[-6:]
                name = self.pick(recent) if self.rng.random() < 0.6 else self.pick(scope)
            else:
                name = self.pick(self.globals) if self.globals and self.rng.random() < 0.5 else self.fresh()
            names.append(name)
        return SLOT.sub(lambda m: names[int(m.group(1))], text)

    def block(self, depth, scope, in_loop, n):
        """n statements at depth; break and continue only inside loops."""
        for _ in range(n):
            r = self.rng.random()
            if depth < 4 and r < 0.32:
                self.compound(depth, scope, in_loop)
            elif in_loop and r < 0.36:
                self.emit(depth, self.fill(self.pick(self.p.loop_only), scope))
            elif r < 0.42 and any(s.startswith("self.") for s in scope):
                attr = self.pick([s for s in scope if s.startswith("self.")])
                if self.rng.random() < 0.5:
                    self.emit(depth, f"{self.fresh_local(scope)} = {attr}")
                else:
                    self.emit(depth, f"{attr} = {self.pick(scope)}")
            else:
                self.emit(depth, self.fill(self.pick(self.p.simple), scope))

    def fresh_local(self, scope):
        name = self.fresh()
        scope.append(name)
        return name

    def body_len(self, depth):
        """How many statements a nested block gets: fewer the deeper it is."""
        return int(self.rng.geometric(0.45 + 0.12 * depth))

    def compound(self, depth, scope, in_loop):
        kind = self.pick("if if if if for for while with try".split())
        n = self.body_len(depth + 1)
        if kind == "if":
            self.emit(depth, "if " + self.fill(self.pick(self.p.if_), scope) + ":")
            self.block(depth + 1, scope, in_loop, n)
            while self.rng.random() < 0.25:
                self.emit(depth, "elif " + self.fill(self.pick(self.p.if_), scope) + ":")
                self.block(depth + 1, scope, in_loop, self.body_len(depth + 1))
            if self.rng.random() < 0.3:
                self.emit(depth, "else:")
                self.block(depth + 1, scope, in_loop, self.body_len(depth + 1))
        elif kind == "for":
            self.emit(depth, self.fill(self.pick(self.p.for_), scope))
            self.block(depth + 1, scope, True, n)
        elif kind == "while":
            self.emit(depth, "while " + self.fill(self.pick(self.p.while_), scope) + ":")
            self.block(depth + 1, scope, True, n)
        elif kind == "with":
            self.emit(depth, self.fill(self.pick(self.p.with_), scope))
            self.block(depth + 1, scope, in_loop, n)
        else:
            self.emit(depth, "try:")
            self.block(depth + 1, scope, in_loop, n)
            for _ in range(1 + int(self.rng.random() < 0.25)):
                header = self.fill(self.pick(self.p.except_), scope)
                if self.rng.random() < 0.3:
                    header += " as " + self.fresh_local(scope)
                self.emit(depth, header + ":")
                self.block(depth + 1, scope, in_loop, self.body_len(depth + 1))
            if self.rng.random() < 0.15:
                self.emit(depth, "finally:")
                self.block(depth + 1, scope, in_loop, self.body_len(depth + 1))

    def function(self, depth, method, init=False, attrs=None):
        name = "__init__" if init else self.fresh()
        params = [self.fresh() for _ in range(int(self.rng.integers(0, 4 if not init else 5)))]
        shown = list(params)
        if shown and self.rng.random() < 0.3:
            shown[-1] += "=" + self.pick(["None", "0", "1", "False", "True", "''", "()"])
        if method:
            shown.insert(0, "self")
        self.emit(depth, f"def {name}({', '.join(shown)}):")
        if not method:
            self.globals.append(name)
        scope = list(params) + ([f"self.{a}" for a in attrs] if attrs else [])
        if init:
            for p in params:
                attr = p if self.rng.random() < 0.6 else "_" + p
                self.emit(depth + 1, f"self.{attr} = {p}")
                attrs.append(attr)
            for _ in range(int(self.rng.integers(0, 3))):
                attr = self.fresh()
                self.emit(depth + 1, f"self.{attr} = {self.pick(['None', '0', '[]', '{}', 'False'])}")
                attrs.append(attr)
            if not params and not attrs:
                self.emit(depth + 1, "pass")
            return
        self.block(depth + 1, scope, False, 2 + int(self.rng.geometric(0.3)))
        if self.rng.random() < 0.6:
            self.emit(depth + 1, self.fill(self.pick(self.p.ret), scope))

    def klass(self):
        name = self.fresh("class")
        r = self.rng.random()
        if r < 0.3:
            base = "(" + self.pick(self.p.bases) + ")"
        elif r < 0.45 and any(g[0].isupper() for g in self.globals):
            base = "(" + self.pick([g for g in self.globals if g[0].isupper()]) + ")"
        else:
            base = ""
        self.emit(0, f"class {name}{base}:")
        self.globals.append(name)
        attrs = []
        self.function(1, True, init=True, attrs=attrs)
        for _ in range(1 + int(self.rng.integers(3))):
            self.emit(0, "")
            self.function(1, True, attrs=attrs)

    def draw(self):
        for _ in range(int(self.rng.integers(0, 4))):
            self.emit(0, self.pick(self.p.imports))
        if self.lines:
            self.emit(0, "")
        for _ in range(int(self.rng.integers(0, 3))):
            name = self.fresh().upper()
            self.globals.append(name)
            self.emit(0, f"{name} = {self.pick(['None', '0', '1', '()', '[]', '{}', repr(self.word())])}")
        for _ in range(1 + int(self.rng.integers(4))):
            if self.lines:
                self.emit(0, "")
                self.emit(0, "")
            if self.rng.random() < 0.35:
                self.klass()
            else:
                self.function(0, False)
        return "\n".join(self.lines) + "\n"


def documents(pools, rng, n_chars):
    docs, total = [], 0
    while total < n_chars:
        doc = Module(pools, rng).draw()
        docs.append(doc)
        total += len(doc) + 1
    return docs


def main():
    rng = np.random.default_rng(SEED)
    pools = Pools(sysconfig.get_paths()["stdlib"])
    train = documents(pools, rng, TRAIN_CHARS)
    valid = documents(pools, rng, VALID_CHARS)
    contexts, answers = [], []
    for _ in range(N_TEST):
        doc = SEP + Module(pools, rng).draw()
        pos = int(rng.integers(MIN_POSITION, len(doc)))
        contexts.append(doc[max(0, pos - CONTEXT):pos])
        answers.append(doc[pos])
    bad = set("".join(train + valid + contexts + answers)) - set(ALPHABET)
    if bad:
        raise SystemExit(f"drawn text has characters outside the alphabet: {sorted(bad)}")
    env = os.path.join("..", "env")
    os.makedirs(env, exist_ok=True)
    with open(os.path.join(env, "train.txt"), "w", newline="") as f:
        f.write("".join(SEP + d for d in train))
    with open(os.path.join(env, "valid.txt"), "w", newline="") as f:
        f.write("".join(SEP + d for d in valid))
    with open(os.path.join(env, "test_contexts.json"), "w") as f:
        json.dump(contexts, f)
    with open("answers.json", "w") as f:
        json.dump(answers, f)
    print(f"wrote {len(train)} training documents ({sum(map(len, train))} characters), "
          f"{len(valid)} validation documents and {N_TEST} test contexts")


if __name__ == "__main__":
    main()
