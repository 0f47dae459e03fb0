#!/usr/bin/env python3
"""Writes tests/fixtures/tasks/pyfloat.tsv: strings with Python's str(float(s)) (or ERR).

What it is for: DROP's number normalisation (lm-eval `_fix_number`, `_is_number`) and GSM8K's
`int(float(x))` rest on Python's float() grammar and repr(); tests/tasks/pytext_test.cpp checks
tasks/pytext.cpp against this table. Cases: random strings over digits and ". _ e E + -", repr /
%.17g / %.3e of random doubles (subnormal to huge), and hand-picked edge cases.
Not for anything else. Usage: python3 scripts/tasks_make_pyfloat_fixture.py [--out FILE] [--cases N]
"""
import argparse
import os
import random

SEED = 1


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "tasks", "pyfloat.tsv"))
    ap.add_argument("--cases", type=int, default=3000)
    args = ap.parse_args()
    rng = random.Random(SEED)
    alphabet = "0123456789._eE+-"
    cases = {"inf", "-Infinity", "nAn", "+nan", " 12 ", "1_000", "1__0", "_1", "1_", "1e1_0", ".e1", "1.e5",
             "0x10", "1e400", "-1e-400", "4.9e-324", "1e-5", "1e16", "123456789012345678", "0.0001", "-0.0"}
    while len(cases) < args.cases * 2 // 3:
        cases.add("".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 10))))
    while len(cases) < args.cases:
        x = rng.choice([rng.random() * 10 ** rng.randrange(-30, 30), float(rng.randrange(10 ** 20)),
                        2.0 ** rng.randrange(-1070, 1024)])
        cases.add(rng.choice([repr(x), f"{x:.17g}", f"{x:.3e}"]))
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write("# made by scripts/tasks_make_pyfloat_fixture.py (CPython str(float(s)); ERR = ValueError)\n")
        for c in sorted(cases):
            try:
                r = str(float(c))
            except ValueError:
                r = "ERR"
            f.write(f"{c}\t{r}\n")


if __name__ == "__main__":
    main()
