#!/usr/bin/env python3
"""Checks that Hugging Face transformers loads a checkpoint exported by `hrmbench train` (run/hf) and
continues prompts exactly as `hrmbench generate` does.

It loads the directory with HrmTextForCausalLM.from_pretrained(output_loading_info=True) and fails on
any missing, unexpected or mismatched key; then, for a few prompts of token ids, compares the greedy
continuation of transformers (generate, do_sample=False, fp32 on the CPU or the GPU) with
`hrmbench generate --prompt-ids ... --ignore-eos --print-ids` (the CPU reference by default). Exits 1
on any difference. Needs torch and transformers (with HrmText).

Example:
  hrmbench train --data corpus.jsonl --tokenizer tokenizer.json --out run --steps 3
  python3 scripts/check_hf_export.py --model run/hf --hrmbench build/hrmbench
"""
import argparse
import random
import subprocess
import sys

import torch
from transformers import HrmTextForCausalLM


def hrmbench_greedy(binary, model, prompt, new_tokens, backend):
    out = subprocess.run(
        [binary, "generate", "--model", model, "--prompt-ids", ",".join(map(str, prompt)),
         "--max-new-tokens", str(new_tokens), "--ignore-eos", "--print-ids", "--backend", backend],
        check=True, capture_output=True, text=True).stdout.strip()
    return [int(t) for t in out.split(",") if t]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="exported directory (config.json + model.safetensors)")
    ap.add_argument("--hrmbench", required=True, help="the hrmbench binary")
    ap.add_argument("--backend", default="cpu", help="hrmbench backend for the comparison (cpu or cuda)")
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    model, info = HrmTextForCausalLM.from_pretrained(a.model, output_loading_info=True, dtype=torch.float32)
    problems = {k: v for k, v in info.items() if v}
    print(f"transformers loading info: {info}")
    if problems:
        print(f"FAIL: {problems}")
        return 1
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device).eval()
    vocab = model.config.vocab_size
    rng = random.Random(a.seed)
    failed = 0
    for i in range(a.prompts):
        prompt = [rng.randrange(14, vocab) for _ in range(rng.randrange(4, 24))]
        with torch.no_grad():
            ids = torch.tensor([prompt], device=device)
            # token_type_ids = 1 marks the prompt as the bidirectional prefix (the PrefixLM mask).
            out = model.generate(ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.ones_like(ids),
                                 max_new_tokens=a.new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0)
        want = out[0, len(prompt):].tolist()
        got = hrmbench_greedy(a.hrmbench, a.model, prompt, a.new_tokens, a.backend)
        same = got == want
        failed += not same
        print(f"prompt {i} ({len(prompt)} ids): transformers {want} hrmbench {got} {'same' if same else 'DIFFERENT'}")
    print("OK: transformers loads the export and agrees" if not failed else f"FAIL: {failed} prompts differ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
