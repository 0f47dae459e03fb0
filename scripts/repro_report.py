#!/usr/bin/env python3
"""Summarises a run of scripts/reproduce.sh: a loss-curve SVG with the held-out exact-match accuracy of
each evaluated checkpoint, and summary.md / summary.json with the numbers.

Reads OUT/train/loss.jsonl (hrmbench train), OUT/eval/step_N/results.json (hrmbench run, GSM8K
scorer: exact match of the boxed answer), OUT/task/baselines.json (hrmbench make-task) and
OUT/timings.txt (the script's stage times). Standard library only, so it runs wherever the script does.

Usage: python3 scripts/repro_report.py OUT [--title TEXT]
"""
import argparse
import json
import math
import os
import re

WIDTH, PANEL_H, PAD_L, PAD_R, PAD_T, GAP = 640, 190, 56, 16, 28, 44
MAX_POINTS = 500  # loss points drawn (the curve is averaged into this many buckets)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def evals(out):
    rows = []
    root = os.path.join(out, "eval")
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        path = os.path.join(root, name, "results.json")
        if not name.startswith("step_") or not os.path.exists(path):
            continue
        with open(path) as f:
            r = json.load(f)["results"]["gsm8k"]
        rows.append({"step": int(name[5:]), "n": r["sample_len"], "acc": r["acc,none"],
                     "acc_stderr": r["acc_stderr,none"], "invalid": r["invalid,none"]})
    return sorted(rows, key=lambda r: r["step"])


def numbers(text):
    return tuple(re.findall(r"\d+", text))


def number_overlap(out):
    """Test doc_ids whose numbers, in order, are those of some training question (the same arithmetic
    seen in training, under other names and objects), and of all test items."""
    with open(os.path.join(out, "task", "corpus.jsonl")) as f:
        seen = {numbers(json.loads(line)["instruction"]) for line in f if line.strip()}
    with open(os.path.join(out, "task", "data", "gsm8k", "test.jsonl")) as f:
        test = [numbers(json.loads(line)["question"]) for line in f if line.strip()]
    return {i for i, t in enumerate(test) if t in seen}, len(test)


def split_acc(out, step, overlap):
    """Exact match on the test items whose numbers were / were not seen in training."""
    path = os.path.join(out, "eval", f"step_{step}", "samples", "gsm8k.jsonl")
    hits = {True: [0, 0], False: [0, 0]}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            h = hits[r["doc_id"] in overlap]
            h[0] += r["acc"]
            h[1] += 1
    return {("seen" if k else "unseen"): (v[0] / v[1] if v[1] else None, v[1]) for k, v in hits.items()}


def bucket(xs, ys, n):
    """Averages (x, y) into at most n consecutive buckets."""
    if len(xs) <= n:
        return xs, ys
    size = len(xs) / n
    bx, by = [], []
    for b in range(n):
        lo, hi = int(b * size), int((b + 1) * size)
        bx.append(sum(xs[lo:hi]) / (hi - lo))
        by.append(sum(ys[lo:hi]) / (hi - lo))
    return bx, by


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def nice_ticks(lo, hi, count=5):
    span = hi - lo
    step = 10 ** math.floor(math.log10(span / count)) if span > 0 else 1
    for m in (1, 2, 5, 10):
        if span / (step * m) <= count:
            step *= m
            break
    t = math.ceil(lo / step) * step
    out = []
    while t <= hi + 1e-9:
        out.append(round(t, 10))
        t += step
    return out


def svg(steps, losses, ev, base, title, total_steps):
    h = PAD_T + 2 * PANEL_H + GAP + 52
    plot_w = WIDTH - PAD_L - PAD_R
    xmax = max(total_steps, 1)

    def x(step):
        return PAD_L + plot_w * step / xmax

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{h}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{WIDTH}" height="{h}" fill="white"/>',
             f'<text x="{PAD_L}" y="16" font-size="13" font-weight="bold">{esc(title)}</text>']

    def panel(top, ylo, yhi, label, ytick_fmt, yticks=None):
        def y(v):
            return top + PANEL_H - PANEL_H * (v - ylo) / (yhi - ylo)
        parts.append(f'<rect x="{PAD_L}" y="{top}" width="{plot_w}" height="{PANEL_H}" fill="none" stroke="#888"/>')
        for t in yticks if yticks is not None else nice_ticks(ylo, yhi):
            parts.append(f'<line x1="{PAD_L}" x2="{PAD_L + plot_w}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#eee"/>')
            parts.append(f'<text x="{PAD_L - 4}" y="{y(t) + 4:.1f}" text-anchor="end">{ytick_fmt(t)}</text>')
        for t in nice_ticks(0, xmax):
            parts.append(f'<text x="{x(t):.1f}" y="{top + PANEL_H + 13}" text-anchor="middle">{int(t)}</text>')
        parts.append(f'<text x="14" y="{top + PANEL_H / 2}" transform="rotate(-90 14 {top + PANEL_H / 2})" '
                     f'text-anchor="middle">{esc(label)}</text>')
        return y

    # Loss (log scale: it falls over orders of magnitude).
    lx, ly = bucket(steps, [math.log10(max(v, 1e-4)) for v in losses], MAX_POINTS)
    lo, hi = math.floor(min(ly) * 2) / 2, math.ceil(max(ly) * 2) / 2
    mantissas = (1, 2, 5) if hi - lo <= 2 else (1,)
    log_ticks = [math.log10(m * 10 ** k) for k in range(math.floor(lo) - 1, math.ceil(hi) + 1) for m in mantissas
                 if lo <= math.log10(m * 10 ** k) <= hi]
    y = panel(PAD_T, lo, hi, "training loss (log scale)", lambda t: f"{10 ** t:.3g}", log_ticks)
    pts = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in zip(lx, ly))
    parts.append(f'<polyline points="{pts}" fill="none" stroke="#1f5fbf" stroke-width="1.3"/>')

    # Held-out exact match with its standard error, and the answer-only baselines.
    top = PAD_T + PANEL_H + GAP
    y = panel(top, 0, 1, "held-out exact match", lambda t: f"{100 * t:.0f}%")
    parts.append(f'<text x="{PAD_L}" y="{h - 6}">answer-only baselines:</text>')
    legend_x = PAD_L + 140
    for key, name, color in (("best_constant_test_acc", "best constant", "#c0392b"),
                             ("majority_test_acc", "most frequent training answer", "#e67e22")):
        if key in base:  # a dashed line in the panel, named in the legend below it
            v = base[key]
            parts.append(f'<line x1="{PAD_L}" x2="{PAD_L + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                         f'stroke="{color}" stroke-dasharray="4,3"/>')
            parts.append(f'<line x1="{legend_x}" x2="{legend_x + 22}" y1="{h - 10}" y2="{h - 10}" stroke="{color}" '
                         f'stroke-dasharray="4,3"/>')
            label = f"{name} {100 * v:.1f}%"
            parts.append(f'<text x="{legend_x + 26}" y="{h - 6}" fill="{color}">{esc(label)}</text>')
            legend_x += 36 + 6 * len(label)
    if ev:
        pts = " ".join(f"{x(r['step']):.1f},{y(r['acc']):.1f}" for r in ev)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#27ae60" stroke-width="1.5"/>')
        for r in ev:
            e = r["acc_stderr"] or 0
            parts.append(f'<line x1="{x(r["step"]):.1f}" x2="{x(r["step"]):.1f}" y1="{y(min(1, r["acc"] + e)):.1f}" '
                         f'y2="{y(max(0, r["acc"] - e)):.1f}" stroke="#27ae60"/>')
            parts.append(f'<circle cx="{x(r["step"]):.1f}" cy="{y(r["acc"]):.1f}" r="3" fill="#27ae60"/>')
            parts.append(f'<text x="{x(r["step"]) - 4:.1f}" y="{y(r["acc"]) - 6:.1f}" text-anchor="end">'
                         f'{100 * r["acc"]:.1f}%</text>')
    parts.append(f'<text x="{PAD_L + plot_w / 2}" y="{top + PANEL_H + 28}" text-anchor="middle">optimizer step</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    log = read_jsonl(os.path.join(a.out, "train", "loss.jsonl"))
    if not log:
        raise SystemExit(f"{a.out}/train/loss.jsonl: no training steps")
    with open(os.path.join(a.out, "task", "baselines.json")) as f:
        base = json.load(f)
    ev = evals(a.out)
    overlap, n_test = number_overlap(a.out)
    for r in ev:
        r["by_numbers"] = split_acc(a.out, r["step"], overlap)
    steps = [r["step"] for r in log]
    losses = [r["loss"] for r in log]
    tokens = [r["tokens"] for r in log]
    seconds = sum(r["seconds"] for r in log)
    cum = []
    for t in tokens:
        cum.append((cum[-1] if cum else 0) + t)
    for r in ev:  # mean training loss over the steps before the checkpoint (up to 50), tokens seen
        window = [l for s, l in zip(steps, losses) if r["step"] - 50 < s <= r["step"]]
        r["train_loss"] = sum(window) / len(window) if window else float("nan")
        r["tokens_seen"] = cum[min(r["step"], len(cum)) - 1]
    timings = {}
    tpath = os.path.join(a.out, "timings.txt")
    if os.path.exists(tpath):
        with open(tpath) as f:
            for line in f:
                k, _, v = line.partition(" ")
                timings[k] = float(v)
    summary = {
        "steps": steps[-1], "tokens": cum[-1], "train_seconds": seconds,
        "tokens_per_s": cum[-1] / seconds if seconds else None,
        "first_loss": losses[0], "last_loss": sum(losses[-50:]) / len(losses[-50:]),
        "baselines": base, "test_items_with_numbers_seen_in_training": len(overlap), "evals": ev,
        "timings_s": timings,
    }
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    title = a.title or f"difficulty {base.get('difficulty')} synthetic task, {steps[-1]} steps"
    with open(os.path.join(a.out, "loss.svg"), "w") as f:
        f.write(svg(steps, losses, ev, base, title, steps[-1]))

    lines = [f"# {title}", "",
             f"{steps[-1]} steps, {cum[-1]:,} packed tokens in {seconds:.0f} s of training steps "
             f"({summary['tokens_per_s']:.0f} tokens/s); loss {losses[0]:.3f} (step 1) -> "
             f"{summary['last_loss']:.4f} (mean of the last 50 steps).", "",
             f"Held-out test: {base['test']} items (none in the training split; {base['test_dropped_as_seen_or_repeated']} "
             f"candidates dropped). Answer-only baselines: most frequent training answer "
             f"({base['majority_answer']}) {100 * base['majority_test_acc']:.1f}%, best constant answer "
             f"{100 * base['best_constant_test_acc']:.1f}%. {len(overlap)} of the {n_test} test questions carry "
             f"the same numbers, in the same order, as some training question (other names and objects); "
             f"{n_test - len(overlap)} have a combination of numbers never seen in training.", "",
             "| step | tokens seen | train loss (last 50 steps) | held-out exact match | on numbers seen / unseen "
             "in training | invalid (no number) |",
             "|---:|---:|---:|---:|---:|---:|"]

    def pct(v):
        return "—" if v is None else f"{100 * v:.1f}%"
    for r in ev:
        b = r["by_numbers"]
        lines.append(f"| {r['step']} | {r['tokens_seen']:,} | {r['train_loss']:.4f} | "
                     f"{100 * r['acc']:.1f}% ± {100 * (r['acc_stderr'] or 0):.1f} | "
                     f"{pct(b['seen'][0])} / {pct(b['unseen'][0])} | {100 * r['invalid']:.1f}% |")
    if timings:
        lines += ["", "Stage wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())]
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
