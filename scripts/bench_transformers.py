#!/usr/bin/env python3
"""Prefill and decode throughput of Hugging Face transformers' HrmTextForCausalLM, the anchor that
`hrmbench bench model` is compared with (docs/PERFORMANCE.md).

It builds the SAME shape with random weights -- from a config.json (`hrmbench bench model
--write-config FILE` writes the one hrmbench uses) or from a --shape preset with the dimensions of
runtime/trainer.cpp's shape_config -- and for each batch size times

  * prefill: one forward over `batch` random prompts of --prompt-len tokens, all of them the
    bidirectional PrefixLM prefix (token_type_ids = 1), with the KV cache on;
  * decode: greedy generate() of --decode-steps + 1 new tokens minus generate() of 1 (min_new_tokens
    forces the lengths, so an end-of-sequence token never stops it early), i.e. --decode-steps
    cached decode steps per sequence.

Each is the best of --repeats runs, after an untimed warm-up of the same shapes.

It prints the table of `hrmbench bench model` (same columns) so the two sit side by side.
On CUDA it runs bf16 (and warms up first); on the CPU fp32, like hrmbench's reference backend.
It is a measuring tool, not a test: nothing is checked.

Example:
  python3 scripts/bench_transformers.py --shape tiny --vocab 8192 --batches 1,32
  python3 scripts/bench_transformers.py --config /tmp/xl.json --attn sdpa    # on a GPU
"""
import argparse
import json
import sys
import time

import torch
from transformers import HrmTextConfig, HrmTextForCausalLM

# runtime/trainer.cpp shape_config (DESIGN §2); keep the two in step.
SHAPES = {
    "tiny": dict(hidden_size=64, num_attention_heads=4, head_dim=16, intermediate_size=176,
                 num_layers_per_stack=2, max_position_embeddings=1024),
    "b": dict(hidden_size=1024, num_attention_heads=8, head_dim=128, intermediate_size=2816,
              num_layers_per_stack=6, max_position_embeddings=4096),
    "l": dict(hidden_size=1280, num_attention_heads=10, head_dim=128, intermediate_size=3328,
              num_layers_per_stack=12, max_position_embeddings=4096),
    "xl": dict(hidden_size=1536, num_attention_heads=12, head_dim=128, intermediate_size=4096,
               num_layers_per_stack=16, max_position_embeddings=4096),
}
H_CYCLES, L_CYCLES = 2, 3          # DESIGN §2
VOCAB_MULTIPLE = 256               # the reference pads the vocabulary (dataset_new.py find_multiple)
BOS_ID, EOS_ID, PAD_ID = 6, 11, 5  # DESIGN §2 special tokens
FIRST_PLAIN_ID = 14                # prompts avoid the special ids, like hrmbench bench model
WARMUP_STEPS = 2


def padded_vocab(v):
    return (v + VOCAB_MULTIPLE - 1) // VOCAB_MULTIPLE * VOCAB_MULTIPLE


def make_config(args):
    if args.config:
        with open(args.config) as f:
            return HrmTextConfig(**json.load(f)), args.name or args.config
    dims = SHAPES[args.shape]
    hidden = dims["hidden_size"]
    cfg = HrmTextConfig(
        vocab_size=padded_vocab(args.vocab), H_cycles=H_CYCLES, L_cycles=L_CYCLES, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        initializer_range=hidden ** -0.5, embedding_scale=hidden ** 0.5, prefix_lm=True,
        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID, **dims)
    return cfg, args.name or args.shape


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def human_bytes(n):
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    u = 0
    while n >= 1024 and u < len(units) - 1:
        n /= 1024
        u += 1
    return f"{n:.0f} {units[u]}" if u == 0 else f"{n:.2f} {units[u]}"


def timed(device, fn):
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def measure(model, cfg, device, batch, prompt_len, steps, gen, repeats):
    """Returns (prefill seconds, decode seconds) for one batch size, each the best of `repeats`."""
    ids = torch.randint(FIRST_PLAIN_ID, cfg.vocab_size, (batch, prompt_len), generator=gen).to(device)
    prefix = torch.ones_like(ids)  # the whole prompt is the bidirectional prefix

    def generate(n):
        return model.generate(input_ids=ids, token_type_ids=prefix, attention_mask=torch.ones_like(ids),
                              max_new_tokens=n, min_new_tokens=n, do_sample=False,
                              pad_token_id=PAD_ID, eos_token_id=EOS_ID)

    prefill = decode = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            t, _ = timed(device, lambda: model(input_ids=ids, token_type_ids=prefix, use_cache=True, logits_to_keep=1))
            prefill = min(prefill, t)
            # generate(steps + 1) - generate(1): the same prefill and set-up inside both, so the
            # difference is `steps` cached decode steps.
            t_one, _ = timed(device, lambda: generate(1))
            t_all, out = timed(device, lambda: generate(steps + 1))
            assert out.shape[1] == prompt_len + steps + 1, out.shape
            decode = min(decode, max(t_all - t_one, 1e-9))
    return prefill, decode


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    src.add_argument("--config", help="config.json of the shape (e.g. from hrmbench bench model --write-config)")
    p.add_argument("--name", help="shape name in the table (default: --shape, or the --config path)")
    p.add_argument("--vocab", type=int, default=65536, help="vocabulary size for --shape (padded to 256)")
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--decode-steps", type=int, default=16)
    p.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    p.add_argument("--attn", choices=["eager", "sdpa"], default="sdpa")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per batch size; the best is reported")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    cfg, name = make_config(args)
    if args.prompt_len + args.decode_steps + 1 > cfg.max_position_embeddings:
        sys.exit(f"--prompt-len + --decode-steps + 1 exceed max_position_embeddings = {cfg.max_position_embeddings}")
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    cfg._attn_implementation = args.attn
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    model = HrmTextForCausalLM(cfg).to(device=device, dtype=dtype).eval()
    params = sum(t.numel() for t in model.parameters())
    print(f"bench_transformers: {name}, {params / 1e9:.3f} B parameters, random weights in "
          f"{time.perf_counter() - t0:.1f} s; transformers {__import__('transformers').__version__}, "
          f"torch {torch.__version__}, {device.type} {str(dtype).removeprefix('torch.')}, {args.attn}, "
          f"{torch.get_num_threads()} CPU threads", file=sys.stderr)

    gen = torch.Generator().manual_seed(args.seed)

    # One KV slot per (stack invocation, block), DESIGN §2; the config counts them in num_hidden_layers.
    slots = cfg.num_layers_per_stack * cfg.H_cycles * (cfg.L_cycles + 1)
    assert slots == cfg.num_hidden_layers, (slots, cfg.num_hidden_layers)
    kv_per_token = slots * 2 * cfg.num_attention_heads * cfg.head_dim * torch.finfo(dtype).bits // 8
    backend = f"transformers {args.attn} {str(dtype).removeprefix('torch.')} {device.type}"
    print("| shape | backend | batch | prefill tok/s | decode tok/s | ms per decode step | KV cache |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for batch in (int(b) for b in args.batches.split(",")):
        # Kernel selection, allocator growth and lazy initialisation belong to no measurement: a
        # short untimed run of the same shapes first.
        measure(model, cfg, device, batch, args.prompt_len, WARMUP_STEPS, gen, 1)
        cpu0 = time.process_time()
        prefill, decode = measure(model, cfg, device, batch, args.prompt_len, args.decode_steps, gen, args.repeats)
        cpu = time.process_time() - cpu0
        kv = kv_per_token * batch * (args.prompt_len + args.decode_steps)
        print(f"| {name} | {backend} | {batch} | {batch * args.prompt_len / prefill:.0f} | "
              f"{batch * args.decode_steps / decode:.1f} | {1000 * decode / args.decode_steps:.1f} | "
              f"{human_bytes(kv)} |", flush=True)
        print(f"bench_transformers: batch {batch}: prefill {prefill:.3f} s, decode {decode:.3f} s, "
              f"CPU time {cpu:.2f} s for all {args.repeats} repeats", file=sys.stderr)


if __name__ == "__main__":
    main()
