#!/usr/bin/env python3
"""Exports the five benchmark suites from the Hugging Face hub as the JSONL files hrmbench reads.

What it is for: users with internet access get the evaluation data in the layout of
shared/data/benchmarks/MANIFEST.md (the same field names as the hub datasets the reference
evaluation, sapientinc/HRM-Text evaluation/benchmarks.py, loads), so `hrmbench tasks/score/run
--data DIR` work without the shared copy. The project never vendors benchmark text.
Not for: the offline build of shared/ (that came from pinned GitHub snapshots; see MANIFEST.md).

Written files (row counts are checked against the official split sizes; a mismatch is an error
unless --allow-count-mismatch):
  gsm8k/{test,train}.jsonl          openai/gsm8k, config main         {question, answer}
  math/{test,train}.jsonl           EleutherAI/hendrycks_math, 7 configs in name order
                                    {problem, level, type, solution, subject}
  mmlu/{test,dev,validation}.jsonl  cais/mmlu, config all             {question, subject, choices, answer}
  arc_challenge/{test,validation,train}.jsonl
                                    allenai/ai2_arc, ARC-Challenge     {id, question, choices{text,label}, answerKey}
  drop/validation.jsonl             EleutherAI/drop                   {section_id, query_id, passage, question,
                                                                      answer, validated_answers}
The DROP file is the structured schema the reference scores (lm-eval get_answers); hrmbench
prefers it over the simple-evals substitute when both are present. MATH rows carry no
`unique_id` here: the hub rows do not keep the original file names.

Usage: pip install datasets && python3 scripts/export_benchmarks.py --out DIR [--suites gsm8k,math,...]
       [--revision DATASET=SHA ...] [--allow-count-mismatch]
"""
import argparse
import json
import os
import sys

# Official split sizes (dataset cards; MANIFEST.md table).
OFFICIAL_ROWS = {
    "gsm8k/test.jsonl": 1319, "gsm8k/train.jsonl": 7473,
    "math/test.jsonl": 5000, "math/train.jsonl": 7500,
    "mmlu/test.jsonl": 14042, "mmlu/dev.jsonl": 285, "mmlu/validation.jsonl": 1531,
    "arc_challenge/test.jsonl": 1172, "arc_challenge/validation.jsonl": 299, "arc_challenge/train.jsonl": 1119,
    "drop/validation.jsonl": 9536,
}

MATH_SUBJECTS = ["algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                 "number_theory", "prealgebra", "precalculus"]


def to_plain(value):
    """Converts hub values (numpy scalars, tuples) into JSON-serialisable Python values."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


class Exporter:
    def __init__(self, out_dir, revisions, allow_mismatch):
        self.out_dir = out_dir
        self.revisions = revisions
        self.allow_mismatch = allow_mismatch
        from datasets import load_dataset  # imported here so --help works without it
        self._load = load_dataset

    def load(self, path, name, split):
        kwargs = {"split": split}
        if path in self.revisions:
            kwargs["revision"] = self.revisions[path]
        return self._load(path, name, **kwargs)

    def write(self, rel, rows):
        path = os.path.join(self.out_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        n = 0
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                f.write(json.dumps(to_plain(row)) + "\n")
                n += 1
        expected = OFFICIAL_ROWS.get(rel)
        if expected is not None and n != expected:
            msg = f"{rel}: {n} rows, the official split has {expected}"
            if not self.allow_mismatch:
                os.remove(tmp)
                raise SystemExit(f"error: {msg} (pass --allow-count-mismatch to keep it)")
            print(f"warning: {msg}", file=sys.stderr)
        os.replace(tmp, path)
        print(f"wrote {path} ({n} rows)", file=sys.stderr)

    def gsm8k(self):
        for split in ("test", "train"):
            ds = self.load("openai/gsm8k", "main", split)
            self.write(f"gsm8k/{split}.jsonl", ({"question": r["question"], "answer": r["answer"]} for r in ds))

    def math(self):
        for split in ("test", "train"):
            def rows():
                # benchmarks.py iterates get_dataset_config_names(...) in this (alphabetical) order.
                for subject in MATH_SUBJECTS:
                    for r in self.load("EleutherAI/hendrycks_math", subject, split):
                        yield {"problem": r["problem"], "level": r["level"], "type": r["type"],
                               "solution": r["solution"], "subject": subject}
            self.write(f"math/{split}.jsonl", rows())

    def mmlu(self):
        for split in ("test", "dev", "validation"):
            ds = self.load("cais/mmlu", "all", split)
            self.write(f"mmlu/{split}.jsonl", ({"question": r["question"], "subject": r["subject"],
                                                "choices": list(r["choices"]), "answer": int(r["answer"])} for r in ds))

    def arc(self):
        for split in ("test", "validation", "train"):
            ds = self.load("allenai/ai2_arc", "ARC-Challenge", split)
            self.write(f"arc_challenge/{split}.jsonl", ({"id": r["id"], "question": r["question"],
                                                         "choices": {"text": list(r["choices"]["text"]),
                                                                     "label": list(r["choices"]["label"])},
                                                         "answerKey": r["answerKey"]} for r in ds))

    def drop(self):
        ds = self.load("EleutherAI/drop", None, "validation")
        keys = ["section_id", "query_id", "passage", "question", "answer", "validated_answers"]
        self.write("drop/validation.jsonl", ({k: r[k] for k in keys} for r in ds))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="data directory to write (e.g. ../shared/data/benchmarks)")
    ap.add_argument("--suites", default="gsm8k,math,mmlu,arc,drop")
    ap.add_argument("--revision", action="append", default=[], metavar="DATASET=SHA",
                    help="pin a hub dataset revision, e.g. cais/mmlu=c30699e8")
    ap.add_argument("--allow-count-mismatch", action="store_true")
    args = ap.parse_args()
    revisions = dict(r.split("=", 1) for r in args.revision)
    exporter = Exporter(args.out, revisions, args.allow_count_mismatch)
    for suite in args.suites.split(","):
        suite = suite.strip()
        if not hasattr(exporter, suite) or suite.startswith("_") or suite in ("load", "write"):
            raise SystemExit(f"error: unknown suite '{suite}' (expected gsm8k, math, mmlu, arc, drop)")
        getattr(exporter, suite)()


if __name__ == "__main__":
    main()
