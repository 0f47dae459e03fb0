#!/usr/bin/env python3
"""Generates the config.json and safetensors fixtures of tests/runtime/{config,safetensors}_test.cpp.

The expectations come from the independent implementations, never from hrmbench: config files are
written by Transformers' HrmTextConfig and read back by it (the resolved values, and the parameter
count of an HrmTextForCausalLM built on the meta device); safetensors files are written by the
`safetensors` package and the expected fp32 values come from torch's own `.float()` conversion.
Not for: making real checkpoints.

Usage:
  python scripts/make_checkpoint_fixture.py            # rewrites tests/fixtures/{config,safetensors}
  python scripts/make_checkpoint_fixture.py --verify F # loads F (e.g. written by our writer) with
                                                       # the safetensors package and prints it
Needs: torch, transformers (>= 5.23, has HrmText), safetensors.
"""

import argparse
import json
import math
import pathlib
import struct

import torch
from safetensors import safe_open
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def f32_bits(values):
    return [struct.unpack("<I", struct.pack("<f", float(v)))[0] for v in values]


# ---------------------------------------------------------------------------------------------
# config.json fixtures

def config_cases():
    from transformers import HrmTextConfig

    # The released 1B ("XL") shapes of DESIGN §2.
    xl = HrmTextConfig(vocab_size=65536, hidden_size=1536, intermediate_size=4096,
                       num_hidden_layers=16, num_attention_heads=12, head_dim=128, H_cycles=2,
                       L_cycles=3, max_position_embeddings=4096,
                       rope_parameters={"rope_theta": 10000.0, "rope_type": "default"},
                       bos_token_id=6, eos_token_id=11, pad_token_id=5, dtype="bfloat16")
    # Small, every knob away from its default; eos as a list; explicit embedding_scale.
    tiny = HrmTextConfig(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, head_dim=16, H_cycles=1, L_cycles=2,
                         max_position_embeddings=128, rms_norm_eps=1e-5,
                         rope_parameters={"rope_theta": 500.0, "rope_type": "default"},
                         embedding_scale=8.0, prefix_lm=False, initializer_range=0.125,
                         bos_token_id=1, eos_token_id=[2, 3], pad_token_id=0)
    # heads × head_dim != hidden_size: allowed by Transformers (only hidden % heads is checked).
    wide = HrmTextConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                         num_attention_heads=4, H_cycles=2, L_cycles=1)
    return {
        "xl.json": xl.to_json_string(),
        "tiny.json": tiny.to_json_string(),
        "wide.json": wide.to_json_string(),
        # An older file: no num_layers_per_stack (num_hidden_layers is per stack), top-level
        # rope_theta, torch_dtype. Hand-written; Transformers resolves it below.
        "legacy.json": json.dumps({
            "model_type": "hrm_text", "architectures": ["HrmTextForCausalLM"], "vocab_size": 1024,
            "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 3,
            "num_attention_heads": 2, "head_dim": 64, "H_cycles": 2, "L_cycles": 2,
            "rope_theta": 20000.0, "initializer_range": 0.0625, "torch_dtype": "float32",
            "eos_token_id": 7}, indent=2),
        # Only the model type: every field takes HrmTextConfig's default.
        "minimal.json": json.dumps({"model_type": "hrm_text"}),
    }


def resolved(path):
    from transformers import HrmTextConfig, HrmTextForCausalLM

    c = HrmTextConfig.from_json_file(str(path))
    with torch.device("meta"):
        model = HrmTextForCausalLM(c)
    eos = c.eos_token_id
    eos_list = [] if eos is None else (list(eos) if isinstance(eos, (list, tuple)) else [eos])
    dtype = getattr(c, "dtype", None)
    return {
        "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
        "num_attention_heads": c.num_attention_heads, "head_dim": c.head_dim,
        "num_layers_per_stack": c.num_layers_per_stack, "num_hidden_layers": c.num_hidden_layers,
        "H_cycles": c.H_cycles, "L_cycles": c.L_cycles, "vocab_size": c.vocab_size,
        "max_position_embeddings": c.max_position_embeddings, "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": c.rope_parameters["rope_theta"], "embedding_scale": c.embedding_scale,
        "initializer_range": c.initializer_range, "prefix_lm": c.prefix_lm,
        "bos_token_id": -1 if c.bos_token_id is None else c.bos_token_id,
        "pad_token_id": -1 if c.pad_token_id is None else c.pad_token_id,
        "eos_token_ids": eos_list,
        "torch_dtype": "" if dtype is None else str(dtype).replace("torch.", ""),
        "parameter_count": sum(p.numel() for p in model.parameters()),
    }


def make_configs():
    out = FIXTURES / "config"
    out.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, text in config_cases().items():
        (out / name).write_text(text if text.endswith("\n") else text + "\n")
        expected[name] = resolved(out / name)
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------
# safetensors fixtures

def small_tensors():
    inf, nan = math.inf, math.nan
    return {
        # f32 with -0, inf, nan and an f32 subnormal.
        "a.f32": torch.tensor([[1.5, -0.0, inf], [nan, 1e-40, -3.25]], dtype=torch.float32),
        # f16 subnormals (smallest 2^-24, largest 2^-14 - 2^-24), max, -inf, nan, a rounded value.
        "b.f16": torch.tensor([2.0 ** -24, 2.0 ** -14 - 2.0 ** -24, 65504.0, -inf, nan, 1.0 / 3.0,
                               -2.0 ** -20], dtype=torch.float16),
        # bf16 subnormal, inf, a value that rounds, and -0.
        "c.bf16": torch.tensor([[2.0 ** -130, inf], [3.14159, -0.0]], dtype=torch.bfloat16),
        "scalar": torch.tensor(42.0, dtype=torch.float32),
        "empty": torch.zeros((0, 4), dtype=torch.bfloat16),
    }


def expected_entry(t):
    return {"dtype": {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[t.dtype],
            "shape": list(t.shape), "bits": f32_bits(t.float().flatten().tolist())}


def make_safetensors():
    out = FIXTURES / "safetensors"
    out.mkdir(parents=True, exist_ok=True)
    tensors = small_tensors()
    save_file(tensors, str(out / "python_small.safetensors"),
              metadata={"format": "pt", "note": "hrmbench fixture"})
    expected = {name: expected_entry(t) for name, t in tensors.items()}

    # A sharded directory as `save_pretrained` lays it out.
    sharded = out / "sharded"
    sharded.mkdir(exist_ok=True)
    gen = torch.Generator().manual_seed(7)
    shards = [
        {"model.embed_tokens.weight": torch.randn(4, 3, generator=gen).to(torch.bfloat16),
         "model.z_L_init": torch.randn(3, generator=gen)},
        {"lm_head.weight": torch.randn(4, 3, generator=gen).to(torch.float16)},
    ]
    weight_map = {}
    total = 0
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(sharded / fname), metadata={"format": "pt"})
        for name, t in shard.items():
            weight_map[name] = fname
            total += t.numel() * t.element_size()
            expected[f"sharded/{name}"] = expected_entry(t)
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


def verify(path):
    with safe_open(path, framework="pt") as f:
        print("metadata:", f.metadata())
        for name in f.keys():
            t = f.get_tensor(name)
            print(f"{name}: {t.dtype} {list(t.shape)} {t.float().flatten().tolist()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verify", metavar="FILE", help="print a safetensors file as Python reads it")
    args = ap.parse_args()
    if args.verify:
        verify(args.verify)
        return
    make_configs()
    make_safetensors()


if __name__ == "__main__":
    main()
