#!/usr/bin/env python3
"""Builds small random HRM-Text checkpoints with Hugging Face transformers and records their outputs.

The C++ runtime is tested against these files (tests/runtime/model_parity_test.cpp): transformers'
`HrmTextForCausalLM` is the oracle. For each model this writes, under tests/fixtures/models/<name>/:
  config.json, model.safetensors (or shards + index)   the checkpoint, as transformers saves it
  expected.json                                         prompts, logits and greedy continuations

What expected.json holds, per case:
  prompt          token ids of the bidirectional prefix (token_type_ids = 1)
  response        token ids appended after it (causal), may be empty
  positions       the positions whose logits are recorded, and `logits` (fp32, one row each):
                  computed in ONE forward pass over prompt+response under the PrefixLM mask
  greedy          12 greedy tokens after the prompt, by full recomputation at every step with
                  the PrefixLM mask (the defining semantics); the script asserts that transformers'
                  own cached `generate()` gives the same tokens.
tiny_text additionally uses the test tokenizer (tests/fixtures/tokenizer/tokenizer.json, made by
scripts/make_tokenizer_fixture.py; linked into the model dir) and records text prompts: the prompt
string in the HRM-Text format, its ids from `tokenizers`, the greedy ids until `<|box_end|>`, and the
text as the reference engine decodes it (trailing stop token dropped, special tokens kept).
Models saved in bf16 are evaluated by transformers after upcasting the bf16 weights to fp32 (the
C++ reference computes in fp32 too), so the tolerance stays the fp32 one.

Re-run: pip install torch transformers safetensors && python3 scripts/make_model_fixtures.py
(transformers >= 5.9 with HrmText; made with transformers 5.23.0, torch 2.15.0 on CPU.)
"""
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import HrmTextConfig, HrmTextForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")
NEW_TOKENS = 12


def make_model(seed, dtype, **cfg):
    torch.manual_seed(seed)
    config = HrmTextConfig(**cfg)
    config._attn_implementation = "eager"
    model = HrmTextForCausalLM(config).eval()
    with torch.no_grad():
        # Random init gives near-uniform logits; widen the weights so greedy decoding is decisive
        # and z_L_init non-zero so its loading is tested too.
        for name, p in model.named_parameters():
            if name.endswith("z_L_init"):
                p.copy_(torch.randn_like(p) * 0.5)
            elif p.dim() == 2:
                p.copy_(torch.randn_like(p) * (1.5 / p.shape[1] ** 0.5))
        if dtype == torch.bfloat16:
            # Round the weights to bf16 so the saved bf16 checkpoint is exactly the model we evaluate.
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return model


def prefix_forward(model, prompt, response):
    ids = torch.tensor([prompt + response])
    tt = torch.tensor([[1] * len(prompt) + [0] * len(response)])
    with torch.no_grad():
        return model(input_ids=ids, token_type_ids=tt, use_cache=False).logits[0]


def greedy_recompute(model, prompt, n):
    out = []
    for _ in range(n):
        logits = prefix_forward(model, prompt, out)
        out.append(int(torch.argmax(logits[-1])))
    return out


def greedy_cached(model, prompt, n):
    ids = torch.tensor([prompt])
    tt = torch.ones_like(ids)
    with torch.no_grad():
        gen = model.generate(input_ids=ids, token_type_ids=tt, max_new_tokens=n, min_new_tokens=n,
                             do_sample=False, eos_token_id=None, pad_token_id=0)
    return gen[0, len(prompt):].tolist()


def unfuse_and_save(model, out_dir, dtype):
    """Writes the unfused tensor spelling (self_attn.{q,k,v,o,gate}_proj, mlp.{gate,up,down}_proj)."""
    state = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(out_dir)


def write_case_file(model, out_dir, cases, rng):
    v = model.config.vocab_size
    records = []
    for prompt_len, resp_len in cases:
        prompt = torch.randint(14, v, (prompt_len,), generator=rng).tolist()
        response = torch.randint(14, v, (resp_len,), generator=rng).tolist()
        logits = prefix_forward(model, prompt, response)
        total = prompt_len + resp_len
        positions = sorted(set([0, prompt_len - 1, total // 2, total - 1] + list(range(prompt_len, total))))
        greedy = greedy_recompute(model, prompt, NEW_TOKENS)
        cached = greedy_cached(model, prompt, NEW_TOKENS)
        assert greedy == cached, f"transformers cached generate disagrees with recomputation: {greedy} vs {cached}"
        top2 = torch.topk(logits[-1], 2).values
        records.append({
            "prompt": prompt,
            "response": response,
            "positions": positions,
            "logits": [[float(x) for x in logits[p]] for p in positions],
            "greedy": greedy,
            "last_top2_margin": float(top2[0] - top2[1]),
        })
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump({
            "made_by": "scripts/make_model_fixtures.py",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "attn_implementation": "eager",
            "compute_dtype": "float32",
            "cases": records,
        }, f, separators=(",", ":"))


TOKENIZER = os.path.join(ROOT, "..", "tokenizer", "tokenizer.json")
CONDITIONS = {"direct": "<|object_ref_start|>", "cot": "<|object_ref_end|>", "noisy": "<|quad_start|>",
              "synth": "<|quad_end|>"}
TEXT_PROMPTS = [("What is 12 + 30?", "synth,cot"),
                ("  Natalia sold clips to 48 of her friends in April.\n", "direct"),
                ("Which gas do plants absorb?\nA. oxygen\nB. carbon dioxide\nAnswer:", "direct")]


def write_text_model(rng):
    """A model whose vocabulary is the test tokenizer's, for text-in/text-out tests."""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(TOKENIZER)
    eos = tok.token_to_id("<|box_end|>")
    m = make_model(4, torch.bfloat16, vocab_size=tok.get_vocab_size(), hidden_size=16, intermediate_size=32,
                   num_hidden_layers=1, num_attention_heads=2, head_dim=8, H_cycles=2, L_cycles=2,
                   max_position_embeddings=4096, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                   bos_token_id=6, eos_token_id=eos, pad_token_id=5)
    d = os.path.join(ROOT, "tiny_text")
    m.to(torch.bfloat16).save_pretrained(d)  # exact: the weights are already bf16-rounded
    m.to(torch.float32)
    os.symlink(os.path.join("..", "..", "tokenizer", "tokenizer.json"), os.path.join(d, "tokenizer.json"))
    records = []
    for text, cond in TEXT_PROMPTS:
        prompt_string = "<|im_start|>" + "".join(CONDITIONS[c] for c in cond.split(",")) + text.strip() + "<|im_end|>"
        ids = tok.encode(prompt_string, add_special_tokens=False).ids
        out = []
        for _ in range(16):
            nxt = int(torch.argmax(prefix_forward(m, ids, out)[-1]))
            out.append(nxt)
            if nxt == eos:
                break
        with torch.no_grad():
            gen = m.generate(input_ids=torch.tensor([ids]), token_type_ids=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=16, do_sample=False, eos_token_id=eos, pad_token_id=0)
        assert gen[0, len(ids):].tolist() == out, "cached generate disagrees with recomputation"
        body = out[:-1] if out and out[-1] == eos else out
        records.append({"text": text, "condition": cond, "prompt_string": prompt_string, "prompt_ids": ids,
                        "generated_ids": out, "generated_text": tok.decode(body, skip_special_tokens=False)})
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"made_by": "scripts/make_model_fixtures.py", "transformers": transformers.__version__,
                   "tokenizer": "tests/fixtures/tokenizer/tokenizer.json", "cases": records}, f, indent=1)


def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    os.makedirs(ROOT)
    rng = torch.Generator().manual_seed(1234)
    cases = [(1, 0), (5, 3), (17, 0), (40, 6)]

    # tiny_f32: fused spelling as transformers' save_pretrained writes it, fp32.
    m = make_model(1, torch.float32, vocab_size=256, hidden_size=32, intermediate_size=64,
                   num_hidden_layers=2, num_attention_heads=2, head_dim=16, H_cycles=2, L_cycles=3,
                   max_position_embeddings=128, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                   bos_token_id=6, eos_token_id=11, pad_token_id=5)
    d = os.path.join(ROOT, "tiny_f32")
    m.save_pretrained(d)
    write_case_file(m, d, cases, rng)

    # tiny_bf16_unfused: bf16 weights, unfused spelling, heads*head_dim != hidden, H=1 L=2.
    m = make_model(2, torch.bfloat16, vocab_size=320, hidden_size=48, intermediate_size=80,
                   num_hidden_layers=3, num_attention_heads=2, head_dim=32, H_cycles=1, L_cycles=2,
                   max_position_embeddings=96, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                   bos_token_id=6, eos_token_id=11, pad_token_id=5)
    d = os.path.join(ROOT, "tiny_bf16_unfused")
    os.makedirs(d)
    unfuse_and_save(m, d, torch.bfloat16)
    write_case_file(m, d, cases, rng)

    # tiny_sharded_old_config: fp32, sharded safetensors, H=3 L=1, one block, theta 500, explicit
    # embedding_scale, and the older config spelling (top-level rope_theta, no num_layers_per_stack).
    m = make_model(3, torch.float32, vocab_size=200, hidden_size=32, intermediate_size=48,
                   num_hidden_layers=1, num_attention_heads=4, head_dim=8, H_cycles=3, L_cycles=1,
                   max_position_embeddings=64, rope_parameters={"rope_type": "default", "rope_theta": 500.0},
                   embedding_scale=3.0, bos_token_id=6, eos_token_id=11, pad_token_id=5)
    d = os.path.join(ROOT, "tiny_sharded_old_config")
    m.save_pretrained(d, max_shard_size="40KB")
    cfg_path = os.path.join(d, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["rope_theta"] = cfg.pop("rope_parameters")["rope_theta"]
    cfg["num_hidden_layers"] = cfg.pop("num_layers_per_stack")
    json.dump(cfg, open(cfg_path, "w"), indent=2)
    write_case_file(m, d, cases, rng)

    write_text_model(rng)

    for name in sorted(os.listdir(ROOT)):
        files = os.listdir(os.path.join(ROOT, name))
        size = sum(os.path.getsize(os.path.join(ROOT, name, f)) for f in files)
        print(f"{name}: {len(files)} files, {size / 1024:.0f} KiB", file=sys.stderr)


if __name__ == "__main__":
    main()
