#!/usr/bin/env python3
"""Side-by-side: lm-evaluation-harness's decontamination Janitor vs `hrmbench contam scan --words`.

Same input for both: the GSM8K and MATH test questions are the contaminants (13-grams of words),
and the corpus is the GSM8K train (question + answer) and MATH train (problem + solution) rows,
one document each. The Janitor is lm-eval's `lm_eval.decontamination.janitor.Janitor` in its
pure-Python mode (its optional C++ helper `janitor_util` is not on PyPI); it normalises text and
checks each document's word 13-grams against the registered set, which is the work a scan does.
Prints words/s of each and the ratio. Timings are wall-clock on whatever machine runs it.

Run: pip install --no-deps lm-eval  (the Janitor needs nothing else)
     python3 scripts/bench_lm_eval_decontam.py --hrmbench build/hrmbench --data ../shared/data/benchmarks
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def rows(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hrmbench", default="build/hrmbench")
    ap.add_argument("--data", default="../shared/data/benchmarks")
    ap.add_argument("--n", type=int, default=13)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    from lm_eval.decontamination.janitor import Janitor  # noqa: E402

    questions = [r["question"] for r in rows(os.path.join(a.data, "gsm8k/test.jsonl"))]
    questions += [r["problem"] for r in rows(os.path.join(a.data, "math/test.jsonl"))]
    corpus = [r["question"] + "\n" + r["answer"] for r in rows(os.path.join(a.data, "gsm8k/train.jsonl"))]
    corpus += [r["problem"] + "\n" + r["solution"] for r in rows(os.path.join(a.data, "math/train.jsonl"))]
    words = sum(len(d.split()) for d in corpus)

    jan = Janitor(ngram_n=a.n)
    t0 = time.perf_counter()
    for q in questions:
        jan.register_contaminant(q)
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    dirty = 0
    for d in corpus:
        chunks = jan.clean_python(d)
        dirty += len(chunks) != 1 or chunks[0] != d
    t_scan = time.perf_counter() - t0
    print(f"lm-eval Janitor (python): {len(questions)} questions indexed in {t_index:.2f} s; "
          f"{len(corpus)} documents, {words} words scanned in {t_scan:.2f} s = {words / t_scan / 1e6:.3f} M words/s; "
          f"{dirty} documents with a match")

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [a.hrmbench, "contam", "scan", "--quiet", "--words", "--data", a.data, "--suites", "gsm8k,math",
               "--n", str(a.n), "--threads", str(a.threads), "--out", tmp,
               "--corpus", os.path.join(a.data, "gsm8k/train.jsonl") + "#question,answer",
               os.path.join(a.data, "math/train.jsonl") + "#problem,solution"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        t_hrm = time.perf_counter() - t0
        summary = json.load(open(os.path.join(tmp, "summary.json")))
    print(f"hrmbench contam scan --words ({a.threads} thread(s), whole command incl. reading and indexing): "
          f"{t_hrm:.2f} s = {words / t_hrm / 1e6:.3f} M words/s")
    print(f"ratio (Janitor scan time / hrmbench total time): {t_scan / t_hrm:.1f}x")
    json.dump({"janitor_index_s": t_index, "janitor_scan_s": t_scan, "hrmbench_s": t_hrm, "words": words,
               "documents": len(corpus), "questions": len(questions)}, sys.stderr)
    print(file=sys.stderr)


if __name__ == "__main__":
    main()
