#!/usr/bin/env python3
"""The layer rule of ARCHITECTURE.md ("Layers"), checked: a top-level module of src/ may name
(through a `crate::` path) only modules of a lower layer, or of its own layer when that layer
allows it; and the modules of one layer may not import each other in a cycle.

A `crate::Name` path that goes through a re-export of src/lib.rs (`pub use module::{Name}`, or
a `pub mod x { pub use crate::module::... }` block) counts as naming the module it comes
from. Lines that are comments, and `#[cfg(test)]` (or `#[cfg(all(test, ...))]`) `mod tests` blocks at the end of a file, are
not read. Exit 1 with one line per violation; prints a summary either way."""
import os
import re
import sys

LAYERS = [
    # (layer, modules, may its modules import each other?)
    ("base", ["shim", "unwind", "error", "contextvars"], False),
    ("blocking pool", ["blocking"], False),
    ("task core", ["task"], False),
    ("loop core", ["event_loop"], False),
    ("runtime", ["runtime"], False),
    ("features", ["create", "future", "timeout", "task_group", "combinators", "yield_now", "sync",
                  "queue", "macro_support", "inspect", "io", "net", "executor", "signal", "compat"], True),
    ("test hooks", ["loom_internals"], False),
]

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
level = {m: i for i, (_, mods, _) in enumerate(LAYERS) for m in mods}
same_ok = {i: ok for i, (_, _, ok) in enumerate(LAYERS)}

tops = set()
for name in os.listdir(SRC):
    if name.endswith(".rs") and name != "lib.rs":
        tops.add(name[:-3])
    elif os.path.isdir(os.path.join(SRC, name)):
        tops.add(name)
unknown = sorted(tops - set(level))
if unknown:
    print("layers: modules with no layer in .ci/layers.py (add them, and to ARCHITECTURE.md):",
          ", ".join(unknown))
    sys.exit(1)


def code_of(path):
    text = open(path, encoding="utf-8").read()
    text = re.split(r"#\[cfg\((?:test|all\(test\b[^\]]*)\)\]\s*mod tests", text)[0]
    return "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))


# Names re-exported at the crate root, and root `pub mod` blocks, mapped to their module.
lib = code_of(os.path.join(SRC, "lib.rs"))
alias = {}
for m in re.finditer(r"pub use (\w+)(?:::\w+)*::\{([^}]*)\}", lib):
    for n in m.group(2).split(","):
        n = n.strip().split(" as ")[-1].strip()
        if n:
            alias[n] = m.group(1)
for m in re.finditer(r"pub use (\w+)(?:::\w+)*::(\w+);", lib):
    alias[m.group(2)] = m.group(1)
for m in re.finditer(r"pub mod (\w+)\s*\{([^}]*)\}", lib):
    inner = re.findall(r"crate::(\w+)", m.group(2))
    if inner:
        alias[m.group(1)] = inner[0]
for f in re.findall(r"^pub (?:async )?fn (\w+)", lib, re.M):
    alias[f] = "create"  # root functions (create_task) delegate to the spawn layer

edges = {}
path_re = re.compile(r"\bcrate::(\w+)")
group_re = re.compile(r"\bcrate::\{([^}]*)\}")
for root, _, files in os.walk(SRC):
    for f in files:
        if not f.endswith(".rs"):
            continue
        path = os.path.join(root, f)
        rel = os.path.relpath(path, SRC).split(os.sep)
        top = rel[0][:-3] if len(rel) == 1 else rel[0]
        if top == "lib":
            continue
        code = code_of(path)
        names = set(path_re.findall(code))
        for g in group_re.findall(code):
            names |= {t.strip().split("::")[0] for t in g.split(",") if t.strip()}
        for n in names:
            target = n if n in tops else alias.get(n)
            if target and target != top:
                edges.setdefault((top, target), set()).add("/".join(rel))

bad = []
for (a, b), where in sorted(edges.items()):
    la, lb = level[a], level[b]
    if lb > la or (lb == la and not same_ok[la]):
        bad.append(f"{a} ({LAYERS[la][0]}) may not import {b} ({LAYERS[lb][0]}): "
                   f"{', '.join(sorted(where))}")

# Cycles inside a layer whose modules may import each other.
graph = {}
for (a, b) in edges:
    if level[a] == level[b]:
        graph.setdefault(a, set()).add(b)


def reaches(start, goal, seen):
    for n in graph.get(start, ()):
        if n == goal:
            return True
        if n not in seen:
            seen.add(n)
            if reaches(n, goal, seen):
                return True
    return False


for a in sorted(graph):
    if reaches(a, a, set()):
        bad.append(f"cycle inside layer {LAYERS[level[a]][0]} through {a}")

for line in bad:
    print("layers:", line)
print(f"layers: {len(edges)} imports between top-level modules checked, {len(bad)} violation(s)")
sys.exit(1 if bad else 0)
