#!/usr/bin/env python3
"""Writes tests/fixtures/train/prepared/: a small corpus in the reference's prepared layout, for
tests/runtime/data_prepared_test.cpp.

The layout is the one sapientinc/HRM-Text scripts/prepare_sft_data.py produces and dataset_new.py
(V1Dataset) reads; this is an independent re-implementation with numpy, not that script:
  * tokens.npy: int32 (<i4), every sample's instruction then its response, back to back;
    instruction = <|im_start|> + the condition's token + encode(instruction) + <|im_end|>,
    response = encode(response) + <|box_end|>, both with add_special_tokens=False; samples whose
    response encodes to nothing are left out;
  * metadata.json: tokenizer_info, "vocab_size": null, "max_seq_len" (the context size, 4097),
    "total_length" = sum of inst_len + resp_len;  tokenizer_info.json beside it;
  * epoch_0/, epoch_1/, ...: inst_start, inst_len, resp_start, resp_len as int64 (<i8), each epoch
    the sample index permuted by one numpy Generator(Philox(seed)) drawn from in turn.
(The reference also copies tokenizer.json into the directory; the fixture leaves that 228 KB copy out,
the tokenizer is tests/fixtures/tokenizer/tokenizer.json.)

Also writes train.jsonl (the input) and expected.json: "samples", the token ids of each kept sample in
input order (with its JSONL line), and "epochs", per epoch directory the sample numbers in its order.

Re-run: python3 scripts/make_prepared_fixture.py   (made with numpy 2.4.6, tokenizers 0.23.3)
"""
import json
import os

import numpy as np
from tokenizers import Tokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "train", "prepared")
TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "tokenizer.json")
EPOCHS, SEED, CONTEXT = 3, 0, 4097
CONDITION_TOKENS = {"direct": "<|object_ref_start|>", "cot": "<|object_ref_end|>",
                    "noisy": "<|quad_start|>", "synth": "<|quad_end|>"}

ROWS = [
    {"instruction": "Ana has 5 apples. She buys 3 more. How many apples does she have?",
     "response": "5 + 3 = 8. The answer is \\boxed{8}.", "condition": "synth"},
    {"instruction": "What is 12 times 4?", "response": "12 * 4 = 48, so \\boxed{48}.", "condition": "cot"},
    {"instruction": "Name a prime number below 10.", "response": "7", "condition": "direct"},
    {"instruction": "A train leaves at 3 pm and travels for 2 hours. When does it arrive?",
     "response": "3 + 2 = 5, at \\boxed{5} pm.", "condition": "synth"},
    {"instruction": "Say nothing.", "response": "", "condition": "direct"},  # empty: left out
    {"instruction": "Bo reads 20 pages a day for 6 days. How many pages?",
     "response": "20 * 6 = 120. \\boxed{120}", "condition": "noisy"},
    {"instruction": "Is 91 prime?", "response": "No: 91 = 7 * 13. \\boxed{no}", "condition": "cot"},
    {"instruction": "Add 250 and 375.", "response": "\\boxed{625}"},  # no condition: "direct"
]


def main():
    os.makedirs(OUT, exist_ok=True)
    tok = Tokenizer.from_file(TOKENIZER)

    def special(name):
        i = tok.token_to_id(name)
        assert i is not None, name
        return i

    boq, eoq, eoa = special("<|im_start|>"), special("<|im_end|>"), special("<|box_end|>")
    flat, index, samples = [], {k: [] for k in ("inst_start", "inst_len", "resp_start", "resp_len")}, []
    for line, row in enumerate(ROWS):
        resp = tok.encode(row["response"], add_special_tokens=False).ids
        if not resp:
            continue
        inst = ([boq, special(CONDITION_TOKENS[row.get("condition", "direct")])]
                + tok.encode(row["instruction"], add_special_tokens=False).ids + [eoq])
        resp = resp + [eoa]
        index["inst_start"].append(len(flat))
        index["inst_len"].append(len(inst))
        flat += inst
        index["resp_start"].append(len(flat))
        index["resp_len"].append(len(resp))
        flat += resp
        samples.append({"line": line, "instruction": inst, "response": resp})

    np.save(os.path.join(OUT, "tokens.npy"), np.asarray(flat, dtype=np.int32))
    arrays = {k: np.asarray(v, dtype=np.int64) for k, v in index.items()}
    info = {"tokenizer_path": "tests/fixtures/tokenizer", "boq": "<|im_start|>", "eoq": "<|im_end|>",
            "eoa": "<|box_end|>", "condition_mapping": CONDITION_TOKENS,
            "vocab_size": tok.get_vocab_size(with_added_tokens=True)}
    with open(os.path.join(OUT, "tokenizer_info.json"), "w") as f:
        json.dump(info, f)
    total = int((arrays["inst_len"] + arrays["resp_len"]).sum())
    with open(os.path.join(OUT, "metadata.json"), "w") as f:
        json.dump({"tokenizer_info": info, "vocab_size": None, "max_seq_len": CONTEXT, "total_length": total}, f)

    gen = np.random.Generator(np.random.Philox(seed=SEED))
    epochs = []
    for e in range(EPOCHS):
        perm = gen.permutation(len(samples))
        d = os.path.join(OUT, f"epoch_{e}")
        os.makedirs(d, exist_ok=True)
        for k, v in arrays.items():
            np.save(os.path.join(d, k + ".npy"), v[perm])
        epochs.append(perm.tolist())

    with open(os.path.join(OUT, "train.jsonl"), "w") as f:
        for row in ROWS:
            f.write(json.dumps(row) + "\n")
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"samples": samples, "epochs": epochs}, f)
    print(f"wrote {len(samples)} samples, {len(flat)} tokens, {EPOCHS} epochs to {OUT}")


if __name__ == "__main__":
    main()
