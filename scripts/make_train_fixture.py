#!/usr/bin/env python3
"""Builds the training-step fixture: one packed batch through transformers' HrmTextForCausalLM,
its loss, gradients and one Adam-atan2 step, for tests/runtime/train_step_test.cpp.

The oracle is PyTorch autograd over transformers' own modules (fp32, eager attention). The forward is
driven here rather than through HrmTextModel.forward so that it follows the reference training code
(sapientinc/HRM-Text models/baselines/hrm_nocarry_bp_warmup.py + dataset_new.py + models/lm_head.py):
  * samples packed into one row: inputs = instruction + response[:-1], labels = ignore for the first
    |instruction|-1 positions, then the response; position ids restart at 0 per sample;
  * a 4-D additive mask: no attention across samples; within a sample, instruction tokens see the
    whole instruction, response tokens are causal (PrefixLM);
  * truncated backprop: with bp_steps b, H_bp = min(H_cycles, b-1), L_bp = b - H_bp; L invocation k
    runs with gradients iff k >= H*L - L_bp, H invocation i iff i >= H - H_bp (torch.no_grad otherwise);
  * loss = cross-entropy summed over labelled positions / number of labelled positions in the batch.
Token id 5 (the config's pad id, for which nn.Embedding zeroes the gradient) is never used.
For bp_steps 2 and 5, one Adam-atan2 step follows; tensors whose .grad is None are skipped, as the
reference optimizer does. The Adam-atan2 step is the reference optimizer (models/adam_atan2.py) written out here:
  p *= 1 - lr*wd; m = lerp(m, g, 1-b1); v = b2 v + (1-b2) g^2;
  p -= lr/(1-b1^t) * atan2(m, sqrt(v)/sqrt(1-b2^t)).

Writes tests/fixtures/train/step/: config.json + model.safetensors (save_pretrained) and
expected.json (samples, per case: bp_steps, loss, gradient norms per tensor, a few gradient entries,
and after one optimizer step a few updated weights).

Also writes tests/fixtures/train/tokenized/: two directories in the data pipeline's format (DESIGN §3)
written with numpy (tokens.npy as <u4 in one and <i4 in the other, the index arrays <i8) and
expected.json listing each sample's instruction and response ids, for tests/runtime/data_test.cpp.

Also writes tests/fixtures/train/step_init/: the same batch and cases with the weights at an init's
width (1/sqrt(fan_in) instead of 1.5/sqrt(fan_in)), a well-conditioned recurrence, for the bf16 CUDA
backend's comparison (the wide fixture amplifies bf16 rounding ~100-fold in its long backward chains).

Re-run: python3 scripts/make_train_fixture.py   (made with torch 2.15.0, transformers 5.23.0, CPU)
"""
import json
import os

import torch
from transformers import HrmTextConfig, HrmTextForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "train", "step")
IGNORE = -100
LR, WD, BETAS = 1e-3, 0.1, (0.9, 0.95)


def make_model(width=1.5):
    torch.manual_seed(1234)
    cfg = HrmTextConfig(hidden_size=32, intermediate_size=64, num_attention_heads=2, head_dim=16,
                        num_layers_per_stack=2, H_cycles=2, L_cycles=3, vocab_size=256,
                        max_position_embeddings=64, embedding_scale=32 ** 0.5, rms_norm_eps=1e-6,
                        tie_word_embeddings=False, prefix_lm=True)
    cfg._attn_implementation = "eager"
    model = HrmTextForCausalLM(cfg).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("z_L_init"):
                p.copy_(torch.randn_like(p))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn_like(p) / 32 ** 0.5)
            else:
                # Wider than an init so the loss and gradients are far from trivial.
                p.copy_(torch.randn_like(p) * (width / p.shape[1] ** 0.5))
    return model


def make_samples():
    g = torch.Generator().manual_seed(99)

    def toks(n):
        t = torch.randint(12, 256, (n,), generator=g).tolist()
        return t

    # (instruction, response) in the prompt format's shape: <|im_start|>=6 ... <|im_end|>=7 / ... <|box_end|>=11
    return [
        ([6] + toks(5) + [7], toks(4) + [11]),
        ([6, 10] + toks(2) + [7], toks(7) + [11]),
        ([6] + toks(9) + [7], [11]),
        ([6] + toks(3) + [7], toks(2) + [11]),
    ]


def pack(samples):
    inputs, labels, pos, mask_rows = [], [], [], []
    spans = []
    for inst, resp in samples:
        start = len(inputs)
        seq = inst + resp[:-1]
        inputs += seq
        labels += [IGNORE] * (len(inst) - 1) + resp
        pos += list(range(len(seq)))
        spans.append((start, len(seq), len(inst)))
    T = len(inputs)
    allowed = torch.zeros(T, T, dtype=torch.bool)
    for start, n, prefix in spans:
        for i in range(n):
            for j in range(n):
                if j < prefix or j <= i:
                    allowed[start + i, start + j] = True
    mask = torch.zeros(T, T)
    mask[~allowed] = torch.finfo(torch.float32).min
    return (torch.tensor([inputs]), torch.tensor([labels]), torch.tensor([pos]), mask[None, None])


def reference_loss(model, batch, bp_steps):
    """The reference trainer's forward and loss for one packed batch (the module docstring's rules);
    scripts/bench_train_transformers.py times the same function under bf16 autocast."""
    cfg = model.config
    inputs, labels, pos, mask = batch
    m = model.model
    H, L = cfg.H_cycles, cfg.L_cycles
    H_bp = min(H, bp_steps - 1)
    L_bp = bp_steps - H_bp
    z_H = m.embed_tokens(inputs) * m.embedding_scale
    z_L = m.z_L_init.expand_as(z_H)
    cos_sin = m.rotary_emb(z_H, pos)
    for i in range(H):
        for k in range(i * L, (i + 1) * L):
            with torch.set_grad_enabled(k >= H * L - L_bp):
                z_L = m.L_module(z_L + z_H, attention_mask=mask, position_embeddings=cos_sin)
        with torch.set_grad_enabled(i >= H - H_bp):
            z_H = m.H_module(z_H + z_L, attention_mask=mask, position_embeddings=cos_sin)
    logits = model.lm_head(z_H).float()
    valid = labels != IGNORE
    return torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=IGNORE, reduction="sum") / valid.sum()


def loss_and_grads(model, batch, bp_steps):
    model.zero_grad()
    loss = reference_loss(model, batch, bp_steps)
    loss.backward()
    return loss.item()


def adam_atan2_step(params):
    b1, b2 = BETAS
    t = 1
    out = {}
    with torch.no_grad():
        for name, p in params:
            if p.grad is None:
                continue
            g = p.grad
            new = p.detach().clone() * (1 - LR * WD)
            m = torch.zeros_like(p).lerp_(g, 1 - b1)
            v = torch.zeros_like(p) * b2 + (1 - b2) * g * g
            step = LR / (1 - b1 ** t)
            new -= step * torch.atan2(m, v.sqrt() / (1 - b2 ** t) ** 0.5)
            out[name] = new
    return out


def make_tokenized():
    import numpy as np
    root = os.path.join(OUT, "..", "tokenized")
    rng = np.random.default_rng(5)
    expected = []
    for name, dtype in (("part_a", np.uint32), ("part_b", np.int32)):
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        tokens, idx = [], {k: [] for k in ("inst_start", "inst_len", "resp_start", "resp_len")}
        for _ in range(3):
            inst = [6] + rng.integers(12, 70000 if dtype == np.uint32 else 200, rng.integers(1, 5)).tolist() + [7]
            resp = rng.integers(12, 200, rng.integers(0, 4)).tolist() + [11]
            idx["inst_start"].append(len(tokens)); idx["inst_len"].append(len(inst)); tokens += inst
            tokens += [0, 0]  # gaps between samples are allowed: only the index arrays define samples
            idx["resp_start"].append(len(tokens)); idx["resp_len"].append(len(resp)); tokens += resp
            expected.append({"instruction": inst, "response": resp})
        np.save(os.path.join(d, "tokens.npy"), np.array(tokens, dtype=dtype))
        for k, v in idx.items():
            np.save(os.path.join(d, k + ".npy"), np.array(v, dtype=np.int64))
    with open(os.path.join(root, "tokenizer_info.json"), "w") as f:
        json.dump({"vocab_size": 70000}, f)  # part_a holds ids up to 69999 (exercises <u4)
    with open(os.path.join(root, "expected.json"), "w") as f:
        json.dump(expected, f)


def write_step(out, width):
    os.makedirs(out, exist_ok=True)
    model = make_model(width)
    model.save_pretrained(out, safe_serialization=True)
    for extra in ("generation_config.json",):
        path = os.path.join(out, extra)
        if os.path.exists(path):
            os.remove(path)
    samples = make_samples()
    batch = pack(samples)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert not any(n.endswith("z_L_init") for n, _ in params)
    cases = []
    for bp_steps in (2, 3, 5, 8):
        loss = loss_and_grads(model, batch, bp_steps)
        norms, entries = {}, []
        gen = torch.Generator().manual_seed(bp_steps)
        for name, p in params:
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            norms[name] = g.double().norm().item()
            flat = g.reshape(-1)
            for idx in torch.randint(0, flat.numel(), (2,), generator=gen).tolist():
                entries.append({"tensor": name, "index": idx, "value": flat[idx].item()})
        case = {"bp_steps": bp_steps, "loss": loss, "grad_norms": norms, "grad_entries": entries}
        if bp_steps in (2, 5):
            # With bp_steps 2, H invocation 0 is detached: the embedding is outside the loss's graph,
            # its .grad stays None and the optimizer skips it (recorded as "skipped").
            updated = adam_atan2_step(params)
            case["adam"] = {"lr": LR, "weight_decay": WD, "betas": list(BETAS), "step": 1, "updated": [],
                            "skipped": [n for n, p in params if p.grad is None]}
            for name, new in updated.items():
                flat = new.reshape(-1)
                for idx in torch.randint(0, flat.numel(), (2,), generator=gen).tolist():
                    case["adam"]["updated"].append({"tensor": name, "index": idx, "value": flat[idx].item()})
        cases.append(case)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"samples": [{"instruction": i, "response": r} for i, r in samples], "cases": cases}, f, indent=1)
    print(os.path.basename(out), "losses", [c["loss"] for c in cases])


def main():
    make_tokenized()
    write_step(OUT, 1.5)
    write_step(os.path.join(OUT, "..", "step_init"), 1.0)


if __name__ == "__main__":
    main()
