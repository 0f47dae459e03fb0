#!/usr/bin/env python3
"""Writes tests/fixtures/tasks/math_parity.jsonl: MATH answer pairs judged by math_verify.

What it is for: tests/tasks/math_parity_test.cpp measures how often our MATH equivalence agrees
with math_verify (the reference's judge) and requires >= 99%; docs/SCORING.md lists every
disagreement. Each case is a real gold answer of math/test.jsonl (the last \\boxed{} of the
solution, referred to by doc_id) and a rewrite generated here, equivalent or not:
\\dfrac/\\tfrac/\\frac, a/b, decimals for fractions, spacing, \\left/\\right, units and \\text{},
degrees, percent and dollar signs, trailing period, reordered sets, "x = " prefixes, wrong
digits, negations, swapped fractions, dropped elements and other rows' answers.

Oracle call: verify(parse("\\boxed{" + gold + "}"), parse("\\boxed{" + pred + "}")). The reference
(benchmarks.py MATH) passes the bare boxed contents to parse(), which extracts nothing from ~9% of
the gold answers (e.g. "\\dfrac{9}{7}"); docs/SCORING.md explains why we wrap them.

Not for DROP (tasks_make_drop_fixture.py).

Setup (once): python3 -m venv /tmp/tasks-venv && /tmp/tasks-venv/bin/pip install math-verify
Usage: /tmp/tasks-venv/bin/python scripts/tasks_make_math_fixture.py [--data DIR] [--out FILE] [--cases N]
Line format: {"d": doc_id, "k": rewrite kind, "p": prediction, "eq": 0|1}
"""
import argparse
import json
import os
import random
import re
import sys
from fractions import Fraction

import math_verify
from math_verify import parse, verify

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_util import last_boxed  # noqa: E402

SEED = 20261124  # --seed overrides; the committed fixture uses this one


FRAC = re.compile(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}")


def rewrites(g, rng, other):
    """(kind, prediction) pairs for one gold answer."""
    out = [("same", g), ("spaces", re.sub(r"([+\-=,])", r" \1 ", g)), ("nospace", g.replace(" ", "")), ("period", g + "."),
           ("other", other)]
    if "\\frac" in g:
        out += [("dfrac", g.replace("\\frac", "\\dfrac")), ("tfrac", g.replace("\\frac", "\\tfrac"))]
    if "\\dfrac" in g:
        out.append(("frac", g.replace("\\dfrac", "\\frac")))
    m = FRAC.fullmatch(g.replace("\\dfrac", "\\frac"))
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        out += [("slash", f"{a}/{b}"), ("swapped", f"\\frac{{{b}}}{{{a}}}"), ("neg", f"-\\frac{{{a}}}{{{b}}}")]
        if b:
            x = Fraction(a, b)
            out.append(("decimal6", f"{float(x):.6f}"))
            out.append(("decimal2", f"{float(x):.2f}"))
    if re.fullmatch(r"-?\d+", g):
        n = int(g)
        out += [("plus1", str(n + 1)), ("neg", str(-n)), ("dot0", f"{n}.0"), ("units", f"{g}\\text{{ cm}}"),
                ("dollar", f"\\${g}"), ("percent", f"{g}\\%"), ("degrees", f"{g}^\\circ"), ("xeq", f"x = {g}"),
                ("comma", f"{n:,}"), ("mbox", f"{g} \\mbox{{ units}}"), ("frac1", f"\\frac{{{2 * n}}}{{2}}")]
    if re.fullmatch(r"-?\d+\.\d+", g):
        out += [("trailing0", g + "0"), ("round", g[:-1] if len(g.split(".")[1]) > 1 else g + "1")]
    if ("(" in g or "[" in g) and "\\left" not in g:
        out.append(("leftright", g.replace("(", "\\left(").replace(")", "\\right)")
                    .replace("[", "\\left[").replace("]", "\\right]")))
    m = re.fullmatch(r"(\\\{|\(|\[|)([^()\[\]{}]*,[^()\[\]{}]*)(\\\}|\)|\]|)", g)
    if m and "\\!" not in g:
        parts = m.group(2).split(",")
        out.append(("reorder", m.group(1) + ",".join(p.strip() for p in reversed(parts)) + m.group(3)))
        out.append(("drop_elem", m.group(1) + ",".join(parts[:-1]) + m.group(3)))
    if "\\sqrt" in g:
        out.append(("sqrt_paren", re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", g)))
        out.append(("sqrt_wrong", g.replace("\\sqrt", "\\sqrt[3]", 1)))
    if "\\text" in g:
        out.append(("text_strip", re.sub(r"\\text\{([^}]*)\}", r"\1", g)))
    if "\\pi" in g:
        out.append(("pi_wrong", g.replace("\\pi", "2\\pi", 1)))
    digits = [i for i, c in enumerate(g) if c.isdigit()]
    if digits:
        i = rng.choice(digits)
        out.append(("digit", g[:i] + str((int(g[i]) + 1) % 10) + g[i + 1:]))
    if re.search(r"(?<![\\a-zA-Z])x(?![a-zA-Z])", g):
        out.append(("var_rename", re.sub(r"(?<![\\a-zA-Z])x(?![a-zA-Z])", "t", g)))
    if "^" in g:
        out.append(("pow_brace", re.sub(r"\^(\d)", r"^{\1}", g)))
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data", "benchmarks"))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "tasks", "math_parity.jsonl"))
    ap.add_argument("--cases", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=SEED, help="a different seed gives a held-out set")
    ap.add_argument("--split", default="test", help="gold answers from math/<split>.jsonl (train: a held-out set)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = [json.loads(l) for l in open(os.path.join(args.data, f"math/{args.split}.jsonl"), encoding="utf-8")]
    golds = [last_boxed(r["solution"]) for r in rows]
    candidates = []
    for d, g in enumerate(golds):
        if g is None:  # a train solution using the "\\boxed 5" form has no braced gold
            continue
        for kind, p in rewrites(g, rng, golds[rng.randrange(len(golds))]):
            candidates.append((d, kind, p))
    rng.shuffle(candidates)
    # Every gold once against itself (the self-score check), then the rewrites stratified by kind so
    # the many integer answers do not crowd out fractions, radicals, tuples and intervals.
    chosen = [(d, "same", g) for d, g in enumerate(golds) if g is not None][: args.cases // 5]
    by_kind = {}
    for c in candidates:
        if c[1] != "same":
            by_kind.setdefault(c[1], []).append(c)
    while len(chosen) < args.cases and any(by_kind.values()):
        for kind in sorted(by_kind):
            if by_kind[kind] and len(chosen) < args.cases:
                chosen.append(by_kind[kind].pop())
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(json.dumps({"_comment": f"made by scripts/tasks_make_math_fixture.py with math-verify "
                            f"{getattr(math_verify, '__version__', '?')}; seed {args.seed}; gold = last \\boxed{{}} of "
                            f"math/{args.split}.jsonl row d; eq = verify(parse('\\\\boxed{'+gold+'}'), "
                            "parse('\\\\boxed{'+p+'}'))"}, ensure_ascii=False) + "\n")
        for d, kind, p in chosen:
            eq = verify(parse("\\boxed{" + golds[d] + "}"), parse("\\boxed{" + p + "}"))
            f.write(json.dumps({"d": d, "k": kind, "p": p, "eq": int(bool(eq))}, ensure_ascii=False) + "\n")
    print(f"wrote {len(chosen)} cases to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
