#!/usr/bin/env python3
"""Training throughput of Hugging Face transformers' HrmText modules driven like the reference trainer,
the anchor that `hrmbench bench train` is compared with (docs/PERFORMANCE.md, docs/TRAINING.md).

It builds the SAME shape with random weights from a config.json (`hrmbench bench train
--write-config FILE` writes the one hrmbench uses) and times, after --warmup untimed steps, the
forward and backward of one batch exactly as `bench train` packs it: --batch-tokens // --sample-tokens
samples of --sample-tokens tokens, the first --prompt-ratio of each the bidirectional prefix, under
the PrefixLM mask (each sample one row of a [B, 1, S, S] mask: no attention across samples, as in a
packed row), with the reference's truncated backprop (bp_steps; the forward of make_train_fixture.py,
which the CPU backend matches to 1e-5), bf16 autocast on CUDA (the reference's precision), fp32 on the
CPU. Then one torch AdamW step (fused on CUDA) stands in for Adam-atan2: the same memory traffic
(weights, gradients, two moments).

It prints the table of `bench train` (same columns and the same model-FLOP count: projections,
attention over the keys each query sees, lm_head; the backward twice the forward of what it
differentiates), so the two sit side by side. A measuring tool, not a test: nothing is checked.

Example:
  hrmbench bench train --shape xl --backend cuda --batch-tokens 12288 --sample-tokens 1024 \
      --write-config /tmp/xl.json --peak-tflops 989
  python3 scripts/bench_train_transformers.py --config /tmp/xl.json --batch-tokens 12288 \
      --sample-tokens 1024 --peak-tflops 989
"""
import argparse
import json
import os
import sys
import time

import torch
from transformers import HrmTextConfig, HrmTextForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_train_fixture import IGNORE, reference_loss  # noqa: E402

FIRST_PLAIN_ID = 14  # random tokens avoid the special ids, like hrmbench bench train


def make_batch(cfg, batch_tokens, sample_tokens, prompt_ratio, device, seed):
    n = batch_tokens // sample_tokens
    if n < 1:
        sys.exit("--sample-tokens exceeds --batch-tokens")
    inst = min(max(round(sample_tokens * prompt_ratio), 1), sample_tokens - 1)
    g = torch.Generator().manual_seed(seed)
    # Packed length sample_tokens: inputs = instruction + response[:-1], labels ignore x (inst - 1) + response.
    seq = torch.randint(FIRST_PLAIN_ID, cfg.vocab_size, (n, sample_tokens + 1), generator=g)
    inputs = seq[:, :sample_tokens]
    labels = torch.cat([torch.full((n, inst - 1), IGNORE), seq[:, inst:]], dim=1)
    pos = torch.arange(sample_tokens).expand(n, -1)
    i = torch.arange(sample_tokens)[:, None]
    j = torch.arange(sample_tokens)[None, :]
    allowed = (j < inst) | (j <= i)
    mask = torch.zeros(sample_tokens, sample_tokens)
    mask[~allowed] = torch.finfo(torch.float32).min
    mask = mask.expand(n, 1, -1, -1)
    batch = tuple(t.to(device) for t in (inputs, labels, pos, mask))
    visible = allowed.sum().item() * n  # keys attended to, summed over rows
    return batch, n * sample_tokens, (labels != IGNORE).sum().item(), visible


def model_flops(cfg, tokens, loss_tokens, visible, bp_steps):
    D, A, I, V = cfg.hidden_size, cfg.num_attention_heads * cfg.head_dim, cfg.intermediate_size, cfg.vocab_size
    block = 2 * tokens * (4 * A * D + A * D + 2 * I * D + I * D) + 4 * A * visible
    stack = block * cfg.num_layers_per_stack
    head = 2 * loss_tokens * D * V
    H, L = cfg.H_cycles, cfg.L_cycles
    H_bp = min(H, bp_steps - 1)
    L_bp = bp_steps - H_bp
    with_grad = min(H_bp, H) + min(L_bp, H * L)
    return H * (L + 1) * stack + head, 2 * (with_grad * stack + head)


def forward_backward(model, batch, bp_steps, device):
    # The reference trainer's step (make_train_fixture.reference_loss), under bf16 autocast on CUDA.
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
        loss = reference_loss(model, batch, bp_steps)
    loss.backward()
    return loss.item()


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="config.json (hrmbench bench train --write-config)")
    ap.add_argument("--name", default="", help="shape name for the table (default: the config path)")
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--sample-tokens", type=int, default=512)
    ap.add_argument("--prompt-ratio", type=float, default=0.5)
    ap.add_argument("--bp-steps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--attn", default="sdpa", help="attn_implementation (sdpa or eager)")
    ap.add_argument("--peak-tflops", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's)")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with open(a.config) as f:
        cfg = HrmTextConfig(**json.load(f))
    cfg._attn_implementation = a.attn
    torch.manual_seed(a.seed)
    model = HrmTextForCausalLM(cfg).float().to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=device == "cuda")
    batch, tokens, loss_tokens, visible = make_batch(cfg, a.batch_tokens, a.sample_tokens, a.prompt_ratio, device,
                                                     a.seed)
    fwd, bwd = model_flops(cfg, tokens, loss_tokens, visible, a.bp_steps)
    fb_s = opt_s = 0.0
    for step in range(a.warmup + a.steps):
        opt.zero_grad(set_to_none=True)
        sync(device)
        t0 = time.perf_counter()
        loss = forward_backward(model, batch, a.bp_steps, device)
        sync(device)
        t1 = time.perf_counter()
        opt.step()
        sync(device)
        t2 = time.perf_counter()
        timed = step >= a.warmup
        print(f"transformers train: {'timed' if timed else 'warm-up'} step {step + 1}  loss {loss:.4f}  "
              f"fwd+bwd {t1 - t0:.3f} s  optimizer {t2 - t1:.3f} s", file=sys.stderr)
        if timed:
            fb_s += t1 - t0
            opt_s += t2 - t1
    n = a.steps
    step_s = (fb_s + opt_s) / n
    tflops = (fwd + bwd) / step_s / 1e12
    mfu = f"{100 * tflops / a.peak_tflops:.1f}%" if a.peak_tflops > 0 else "-"
    name = a.name or a.config
    print("| shape | backend | batch tokens | bp steps | fwd+bwd ms | optimizer ms | tokens/s | model TFLOP/step "
          "| TFLOP/s | MFU |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {name} | transformers {device} ({a.attn}{', bf16' if device == 'cuda' else ''}) | {tokens} | "
          f"{a.bp_steps} | {1000 * fb_s / n:.1f} | {1000 * opt_s / n:.1f} | {tokens / step_s:.0f} | "
          f"{(fwd + bwd) / 1e12:.4g} | {tflops:.4g} | {mfu} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
