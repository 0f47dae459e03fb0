#!/usr/bin/env python3
"""Writes tests/fixtures/tasks/prompt_hashes.jsonl: a hash of every prompt and gold answer of the
five suites, built by a second, independent implementation of the reference prompt builders.

What it is for: tests/tasks/prompt_parity_test.cpp compares the C++ prompts of ALL rows with these
hashes. The builders below are re-written from the protocol of sapientinc/HRM-Text
evaluation/benchmarks.py (MCQ format, shots, DROP exemplars) and simple_inference_engine.py
(`p.strip()` before tokenising); they read the same JSONL files with Python's json module.
Pass --reference-dir PATH (a checkout of sapientinc/HRM-Text) to build the prompts with the
reference module itself instead: `datasets.load_dataset` is replaced by a reader of the local
JSONL files, everything else is the reference code.

Not for scoring parity (see tasks_make_drop_fixture.py, tasks_make_math_fixture.py).

Usage: python3 scripts/tasks_make_prompt_fixture.py [--data ../shared/data/benchmarks]
           [--reference-dir PATH] [--out tests/fixtures/tasks/prompt_hashes.jsonl]
With --reference-dir, run it with an interpreter that has lm-eval (--no-deps is enough), numpy,
scipy and math-verify installed, e.g. /tmp/tasks-venv/bin/python (see tasks_make_drop_fixture.py).
Hash: FNV-1a 64 of the UTF-8 bytes; rows keep the low 32 bits as 8 hex digits.
"""
import argparse
import json
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_util import last_boxed  # noqa: E402

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1


def fnv1a64(data: bytes) -> int:
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK64
    return h


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# The three fixed DROP exemplars of benchmarks.py (protocol data), kept in one file so that the
# C++ copy is checked against a separately typed one.
DROP_EXEMPLARS_FILE = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tasks", "drop_exemplars.json")


def own_builders(data):
    """Independent port: returns {suite: (prompts, targets)}."""
    out = {}
    gsm = read_jsonl(os.path.join(data, "gsm8k/test.jsonl"))
    out["gsm8k"] = ([r["question"] for r in gsm],
                    [str(int(r["answer"].split("####")[-1].strip().replace(",", ""))) for r in gsm])

    math = read_jsonl(os.path.join(data, "math/test.jsonl"))
    out["math"] = ([r["problem"] for r in math], [last_boxed(r["solution"]) for r in math])

    with open(DROP_EXEMPLARS_FILE, encoding="utf-8") as f:
        exemplars = json.load(f)
    prefix = "".join(e + "\n\n" for e in exemplars)
    drop = read_jsonl(os.path.join(data, "drop/validation_simple_evals.jsonl"))
    out["drop"] = ([f"{prefix}{r['passage']}\nQ: {r['question']}\nA:" for r in drop],
                   [" | ".join(dict.fromkeys(r["answers"])) for r in drop])  # de-duplicated, as get_answers

    def fmt(q, choices, gold):
        text = q.strip() + "\n"
        for k, c in enumerate(choices):
            text += f"{chr(65 + k)}. {c.strip()}\n"
        return text + (f"Answer: {chr(65 + gold)}" if gold is not None else "Answer:")

    dev = read_jsonl(os.path.join(data, "mmlu/dev.jsonl"))
    shots = {}
    for r in dev:
        shots.setdefault(r["subject"], []).append(r)
    test = read_jsonl(os.path.join(data, "mmlu/test.jsonl"))
    prompts = []
    for r in test:
        k = 3 if r["subject"] == "high_school_european_history" else 5
        p = "".join(fmt(s["question"], s["choices"], s["answer"]) + "\n\n" for s in shots[r["subject"]][:k])
        prompts.append(p + fmt(r["question"], r["choices"], None))
    out["mmlu"] = (prompts, [chr(65 + r["answer"]) for r in test])

    def arc_gold(r):
        return r["choices"]["label"].index(r["answerKey"])

    val = read_jsonl(os.path.join(data, "arc_challenge/validation.jsonl"))[:25]
    prefix = "".join(fmt(s["question"], s["choices"]["text"], arc_gold(s)) + "\n\n" for s in val)
    test = read_jsonl(os.path.join(data, "arc_challenge/test.jsonl"))
    out["arc"] = ([prefix + fmt(r["question"], r["choices"]["text"], None) for r in test],
                  [chr(65 + arc_gold(r)) for r in test])
    return out


def reference_builders(data, ref_dir):
    """Builds prompts with the reference module, datasets.load_dataset served from local JSONL."""

    class LocalDataset(list):
        def __getitem__(self, key):
            if isinstance(key, str):
                return [row[key] for row in self]
            return list.__getitem__(self, key)

        def map(self, fn):
            return LocalDataset(fn(r) for r in self)

    def structured_drop(rows):
        # The substitute rows carry flattened answers; give them the EleutherAI/drop shape the
        # reference's process_docs expects (one span per answer). Prompts only use passage/question.
        out = []
        for i, r in enumerate(rows):
            ans = r["answers"]
            empty_date = {"day": "", "month": "", "year": ""}
            out.append({"query_id": str(i), "passage": r["passage"], "question": r["question"],
                        "answer": {"number": "", "date": empty_date, "spans": [ans[0]]},
                        "validated_answers": {"number": ["" for _ in ans[1:]], "date": [empty_date for _ in ans[1:]],
                                              "spans": [[a] for a in ans[1:]]}})
        return out

    math_subjects = ["algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                     "number_theory", "prealgebra", "precalculus"]

    def load_dataset(path, name=None, split=None):
        base, _, sl = (split or "").partition("[")
        if path in ("gsm8k", "openai/gsm8k"):  # copies of benchmarks.py use either name
            rows = read_jsonl(os.path.join(data, f"gsm8k/{base}.jsonl"))
        elif path == "EleutherAI/hendrycks_math":
            rows = [r for r in read_jsonl(os.path.join(data, f"math/{base}.jsonl")) if r["subject"] == name]
        elif path == "EleutherAI/drop":
            rows = structured_drop(read_jsonl(os.path.join(data, "drop/validation_simple_evals.jsonl")))
        elif path == "cais/mmlu":
            rows = read_jsonl(os.path.join(data, f"mmlu/{base}.jsonl"))
        elif path == "allenai/ai2_arc":
            rows = read_jsonl(os.path.join(data, f"arc_challenge/{base}.jsonl"))
        else:
            raise KeyError(path)
        if sl:
            rows = rows[:int(sl.rstrip("]").lstrip(":"))]
        return LocalDataset(rows)

    datasets = types.ModuleType("datasets")
    datasets.load_dataset = load_dataset
    datasets.get_dataset_config_names = lambda path: list(math_subjects)
    sys.modules["datasets"] = datasets
    try:  # the reference imports lm-eval's DROP utils at module level; the harness package may not import
        import lm_eval.tasks.drop.utils  # noqa: F401
    except Exception:
        import importlib.util
        import lm_eval
        path = os.path.join(os.path.dirname(lm_eval.__file__), "tasks", "drop", "utils.py")
        spec = importlib.util.spec_from_file_location("lm_eval.tasks.drop.utils", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for name in ("lm_eval.tasks", "lm_eval.tasks.drop"):
            sys.modules.setdefault(name, types.ModuleType(name))
        sys.modules["lm_eval.tasks.drop.utils"] = mod
        sys.modules["lm_eval.tasks.drop"].utils = mod
    sys.path.insert(0, ref_dir)
    import evaluation.benchmarks as b  # noqa: E402  (the reference module)

    out = {}
    g = b.GSM8k()
    out["gsm8k"] = (list(g.prompts), [str(t) for t in g.ground_truths])
    m = b.MATH()
    out["math"] = (list(m.prompts), list(m.ground_truths))
    d = b.DROP()
    out["drop"] = (list(d.prompts), [" | ".join(a[0] for a in doc["answers"]) for doc in d.ground_truths])
    mm = b.MMLU(special_shots={"high_school_european_history": 3})
    out["mmlu"] = (list(mm.prompts), [gt["gold"] for gt in mm.ground_truths])
    a = b.ARC()
    out["arc"] = (list(a.prompts), [gt["gold"] for gt in a.ground_truths])
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data", "benchmarks"))
    ap.add_argument("--reference-dir", default=None)
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "tasks", "prompt_hashes.jsonl"))
    args = ap.parse_args()
    suites = reference_builders(args.data, args.reference_dir) if args.reference_dir else own_builders(args.data)
    made_by = ("sapientinc/HRM-Text evaluation/benchmarks.py via --reference-dir" if args.reference_dir
               else "the independent Python port in scripts/tasks_make_prompt_fixture.py")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(json.dumps({"_comment": f"made by scripts/tasks_make_prompt_fixture.py from {made_by}; "
                            "prompt = builder output after str.strip(); hashes FNV-1a 64 of UTF-8; "
                            "row_hashes = low 32 bits, 8 hex digits per row"}) + "\n")
        for name in ["mmlu", "gsm8k", "math", "drop", "arc"]:
            prompts, targets = suites[name]
            prompts = [p.strip() for p in prompts]
            row_hashes = "".join(f"{fnv1a64(p.encode('utf-8')) & 0xFFFFFFFF:08x}" for p in prompts)
            all_targets = fnv1a64("\n".join(targets).encode("utf-8"))
            f.write(json.dumps({"suite": name, "rows": len(prompts), "targets_hash": f"{all_targets:016x}",
                                "row_hashes": row_hashes}) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
