#!/usr/bin/env python3
"""Writes tests/fixtures/tasks/drop_parity.jsonl: DROP predictions scored by lm-evaluation-harness.

What it is for: tests/tasks/drop_parity_test.cpp checks that our DROP EM/F1 equal lm-eval's
(lm_eval/tasks/drop/utils.py, the scorer the reference evaluation calls) on every case.
Cases: real gold answers of drop/validation_simple_evals.jsonl (referred to by doc_id, text not
copied beyond the answer strings) against predictions perturbed here: case, articles,
punctuation, number spellings, partial spans, extra words, other rows' answers, multi-span
joins; plus structured multi-span golds (answers split on " and " / ", ") and predicted span
lists scored with get_metrics directly, which exercises the bag alignment.

Not for MATH (tasks_make_math_fixture.py) or prompts (tasks_make_prompt_fixture.py).

Setup (once): python3 -m venv /tmp/tasks-venv &&
  /tmp/tasks-venv/bin/pip install numpy scipy && /tmp/tasks-venv/bin/pip install --no-deps lm-eval
Usage: /tmp/tasks-venv/bin/python scripts/tasks_make_drop_fixture.py [--data DIR] [--out FILE] [--cases N]
Line format: {"d": doc_id, "p": prediction str | [spans], "g": [[gold spans], ...], "r": 1?, "em": x, "f1": y}
"p" a list: get_metrics(p, g[0]); "p" a string without "g": process_results with the answers of row d
as golds; with "g" and "r": process_results with golds g.
"""
import argparse
import importlib.util
import json
import os
import random
import sys

import lm_eval

SEED = 20261124


def load_drop_utils():
    # Load utils.py by path: importing the lm_eval.tasks package pulls in the whole harness.
    path = os.path.join(os.path.dirname(lm_eval.__file__), "tasks", "drop", "utils.py")
    spec = importlib.util.spec_from_file_location("lm_eval_drop_utils", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, getattr(lm_eval, "__version__", "?")


NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def perturb(ans, rng, other):
    """Returns a list of predictions derived from one gold string."""
    words = ans.split()
    out = [ans, ans.upper(), ans.lower(), ans.title(), " " + ans + " ", ans + ".", ans + "!", "the " + ans,
           "The " + ans + ".", "a " + ans, "An " + ans, ans.replace(" ", "-"), ans.replace(" ", "  "),
           "(" + ans + ")", "\"" + ans + "\"", ans + " yards", "about " + ans, ans + "\n", other,
           ans + " and " + other, other + ", " + ans, "", "   ", "-", "The answer is " + ans]
    if len(words) > 1:
        out += [" ".join(words[:-1]), " ".join(words[1:]), " ".join(reversed(words)), words[0], words[-1]]
    try:
        x = float(ans.replace(",", ""))
        out += [str(x), f"{x:,.2f}", f"{x:.1f}", str(int(x)) + ".", str(int(x) + 1), f"{x:e}", "$" + ans,
                ans + "%", "-" + ans, ans.replace(".", ","), f"{int(x):,}", "0" + ans, ans + "_0", "1_" + ans]
        if x == int(x) and 0 <= int(x) <= 10:
            out.append(NUMBER_WORDS[int(x)])
    except ValueError:
        pass
    for w in words:
        if w.isdigit():
            out.append(ans.replace(w, str(int(w) + 1), 1))
            out.append(ans.replace(w, w + ".0", 1))
            break
    odd = ["nan", "inf", "Infinity", "1e3", "1E+03", "1_000", "+5", ".5", "5.", "0.50", "٣", "naïve café", "THE", "a an the",
           "é", "1,000,000", "3/4", "12:30", "10-yard", "o'clock", "U.S.", "tab\there", "semi;colon", "#1"]
    out.append(rng.choice(odd) + " " + ans)
    out.append(rng.choice(odd))
    return out


def split_multi(ans):
    for sep in (" and ", ", "):
        if sep in ans:
            parts = [p for p in ans.split(sep) if p.strip()]
            if len(parts) > 1:
                return parts
    return None


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data", "benchmarks"))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "tasks", "drop_parity.jsonl"))
    ap.add_argument("--cases", type=int, default=6000)
    ap.add_argument("--structured", type=int, default=600, help="extra process_results cases with structured golds")
    args = ap.parse_args()
    utils, version = load_drop_utils()
    rng = random.Random(SEED)
    rows = [json.loads(l) for l in open(os.path.join(args.data, "drop/validation_simple_evals.jsonl"), encoding="utf-8")]
    cases = []
    # 1) process_results on real rows: golds are the row's answers (one span each).
    order = list(range(len(rows)))
    rng.shuffle(order)
    n_single = args.cases * 2 // 3
    for doc_id in order:
        if len(cases) >= n_single:
            break
        answers = rows[doc_id]["answers"]
        other = rows[rng.randrange(len(rows))]["answers"][0]
        preds = perturb(rng.choice(answers), rng, other)
        golds = [(a,) for a in answers]
        for p in rng.sample(preds, min(4, len(preds))):
            r = utils.process_results({"answers": golds}, [p])
            cases.append({"d": doc_id, "p": p, "em": float(r["em"]), "f1": float(r["f1"])})
    # 2) get_metrics with structured multi-span golds and span-list predictions.
    multi = [(i, split_multi(a)) for i, r in enumerate(rows) for a in r["answers"]]
    multi = [(i, m) for i, m in multi if m]
    while len(cases) < args.cases:
        doc_id, gold = rng.choice(multi)
        other = rng.choice(rows)["answers"][0]
        pred = list(gold)
        choice = rng.randrange(8)
        if choice == 0:
            rng.shuffle(pred)
        elif choice == 1:
            pred = pred[:-1]
        elif choice == 2:
            pred = pred + [other]
        elif choice == 3:
            pred = [p.upper() + "." for p in pred]
        elif choice == 4:
            pred = [" ".join(pred)]
        elif choice == 5:
            pred = [rng.choice(perturb(p, rng, other)) for p in pred]
        elif choice == 6:
            pred = pred * 2
        else:
            pred = [other] + pred[1:] + [str(rng.randrange(100))]
        em, f1 = utils.get_metrics(pred, tuple(gold))
        cases.append({"d": doc_id, "p": pred, "g": [gold], "em": float(em), "f1": float(f1)})
    # 3) process_results with several structured gold answers per doc, including blank ones
    #    (lm-eval skips a gold whose first span is blank, e.g. an empty date).
    for _ in range(args.structured):
        doc_id, gold = rng.choice(multi)
        extra = rng.choice(rows)["answers"][0]
        golds = [tuple(gold), (extra,), ("",), (" ",)]
        rng.shuffle(golds)
        golds = golds[: rng.randrange(1, len(golds) + 1)]
        pred = rng.choice([" ".join(gold), gold[0], extra, "", rng.choice(perturb(extra, rng, gold[-1]))])
        r = utils.process_results({"answers": golds}, [pred])
        cases.append({"d": doc_id, "p": pred, "g": [list(g) for g in golds], "r": 1,
                      "em": float(r["em"]), "f1": float(r["f1"])})
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(json.dumps({"_comment": f"made by scripts/tasks_make_drop_fixture.py with lm-eval {version} "
                            "lm_eval/tasks/drop/utils.py; seed " + str(SEED) + "; golds of lines without 'g' "
                            "are the answers of drop/validation_simple_evals.jsonl row d"}, ensure_ascii=False) + "\n")
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    print(f"wrote {len(cases)} cases to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
