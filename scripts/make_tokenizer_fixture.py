#!/usr/bin/env python3
"""Builds the tokenizer parity fixture in tests/fixtures/tokenizer/ with the Python `tokenizers` package.

What it is for: an independent oracle for runtime/tokenizer.cpp. It trains a small byte-level BPE
tokenizer with exactly HRM-Text's configuration (DESIGN.md section 2: NFC normalizer, the Split
regex with behaviour Isolated, ByteLevel without prefix space or regex, ByteLevel decoder, the
special tokens reserved first with ids 0..13) on every string of the benchmark JSONL files, then
encodes every one of those strings plus hand-written adversarial strings and records the results.
Not for: producing a tokenizer for real models (the vocabulary is deliberately small, 8192).

Outputs (all in tests/fixtures/tokenizer/):
  tokenizer.json  the trained tokenizer (also used by other tests as a small model tokenizer)
  parity.txt      per benchmark file and row: the hash and id count over all string fields of the row
  samples.jsonl   full id lists for a few hundred benchmark strings (by source, no text), every
                  adversarial string (with its text) and decode cases (ids -> expected text)

"Texts" are all JSON string values of every row, found by walking each row depth-first in document
order (object members in file order, arrays in index order); the field path is written like
`choices.text[2]`. Benchmark text itself is never written to the fixture: the C++ test reads the
JSONL files from $HRM_SHARED and walks them the same way.

Hashes: ids_hash(ids) = FNV-1a 64 over the ids as little-endian int32. A row's hash is FNV-1a 64
over, for each of its texts in walk order, its id count then its ids, all as little-endian int32.

Run from the repository root:  python3 scripts/make_tokenizer_fixture.py [--shared ../shared]
An existing tokenizer.json is reused (other tests depend on its ids); --retrain trains a new one.
It also prints the Python encoding speed (single-threaded loop and encode_batch) for
docs/TOKENIZER.md; --bench-only does only that.
"""
import argparse
import json
import os
import random
import struct
import sys
import time
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
import tokenizers

# DESIGN.md section 2: the Split pre-tokenizer regex of HRM-Text.
SPLIT_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# DESIGN.md section 2: added/special tokens with ids 0..13, in id order.
SPECIAL_TOKENS = [
    "<|PAD|>", "<|direct|>", "<|cot|>", "<|noisy|>", "<|synth|>", "<|endoftext|>", "<|im_start|>",
    "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
    "<|quad_start|>", "<|quad_end|>",
]
VOCAB_SIZE = 8192  # small so the committed tokenizer.json stays a few hundred KB
# Extra non-special added tokens for the normalized-added-token variant; the second one is not in
# NFC, so it matches only after normalization (both spellings of the text do).
VARIANT_ADDED = ["<think>", "e\u0301tude", "new line"]
VARIANT_TEXTS = [
    "<think>why</think> an \u00e9tude and an e\u0301tude",
    "<|im_start|><think>new line<|im_end|>new lines",
    "<think<think>>",
]
SAMPLES_PER_FILE = 12  # first texts of each file with full id lists
RANDOM_SAMPLES = 200  # more full id lists, drawn with a fixed seed
SEED = 20260524

FNV_OFFSET = 0xcbf29ce484222325
FNV_PRIME = 0x100000001b3
MASK64 = (1 << 64) - 1


def fnv1a(data: bytes, h: int = FNV_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK64
    return h


def le32(values) -> bytes:
    return struct.pack("<%di" % len(values), *values)


def ids_hash(ids) -> int:
    return fnv1a(le32(ids))


def walk(value, path, out):
    """Appends (field_path, string) for every string in `value`, depth-first in document order."""
    if isinstance(value, str):
        out.append((path, value))
    elif isinstance(value, dict):
        for k, v in value.items():
            walk(v, f"{path}.{k}" if path else k, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            walk(v, f"{path}[{i}]", out)


def load_benchmarks(bench_dir: Path):
    """Returns [(relative_file, [(row, [(field, text), ...]), ...]), ...] in sorted file order."""
    files = []
    for path in sorted(bench_dir.glob("*/*.jsonl")):
        rel = path.relative_to(bench_dir).as_posix()
        rows = []
        with open(path, encoding="utf-8") as f:
            for row, line in enumerate(f):
                texts = []
                walk(json.loads(line), "", texts)
                rows.append((row, texts))
        files.append((rel, rows))
    return files


def adversarial_strings():
    s = [
        "",
        "Hello, World! I'M HERE. YOU'RE, THEY'LL, WE'VE, SHE'D, IT'S, DON'T, 'S 'T 'Re 'vE 'LL 'D",
        "don't won't it's we'll they'd I'm you're we've",
        "'ſ 'K 'ſt",  # long s and Kelvin sign fold to s/k under Unicode case folding
        "👍🏽 family 👨‍👩‍👧‍👦 flag 🇺🇸🇫🇷 ❤️‍🔥",
        "日本語のテキストと中文文本，한국어 텍스트。",
        "cafe\u0301 A\u030a e\u0301\u0301 \u1e9b\u0323 \u0041\u0308\u0304",  # NFC composes these
        "\u1100\u1161\u11a8 \u1112\u1161\u11ab",  # conjoining jamo -> precomposed Hangul under NFC
        "\u0301abc \u0308 \u20dd",  # combining marks with nothing to combine with
        "line1\r\nline2\n\n\nline3\r\r  \r\n  x",
        "a" + " " * 1000 + "b",
        "\t\t\t x \t\n\t",
        "   \n   ",
        "     ",
        "x    ",
        "1234567890 3.14159 1,000,000 ١٢٣ ४५६ Ⅻ ² ½ ①",
        "<|im_start|>user\nWhat is 2+2?<|im_end|>",
        "<|im_start|><|im_end|><|box_end|>",
        "<<|im_end|>> <|im_start <|IM_START|> |im_end|>",
        "x<|endoftext|>y <|object_ref_start|><|object_ref_end|>\n<|quad_start|> <|quad_end|>",
        "<|im_start|><|object_ref_start|><|quad_end|>Solve x+1=2.<|im_end|>",
        "<|PAD|><|PAD|> <|direct|><|cot|><|noisy|><|synth|><|box_start|>",
        "\ufffd replacement \ufffd\ufffd",
        "\x00\x01\x02\x7f control \x1b[0m",
        "\u200b zero\u200dwidth \u2060 \ufeffBOM",
        "\u180e mongolian \u00a0nbsp \u2007 \u202f \u3000 ideographic",
        "\u2028 line sep \u2029 para sep \u0085 NEL \x0b VT \x0c FF",
        "ǅungla ǈ Straße STRASSE ﬁne İstanbul ıi",
        "‘smart’ “quotes” — dashes – … ellipsis",
        "∑ x² ≤ ∞, ∀ε>0 ∃δ: |x−y|<δ ⟹ |f(x)−f(y)|<ε",
        "$\\frac{1}{2} + \\sqrt{x^2} = \\boxed{42}$",
        "    def f(x):\n        return x ** 2\n\n\nprint(f(3))\n",
        "a" * 3000,
        "ab" * 1500 + " " + "xyz" * 700,
        "שלום עולם مرحبا بالعالم Привет мир Γειά σου κόσμε",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐛𝐨𝐥𝐝 𝟙𝟚𝟛",
        "\U0010FFFD private \ue000 use \U000F0000",
        "tab\tseparated\tvalues\n1\t2\t3",
        "!!!??? ... ,,, ;;; ::: --- ___ ***",
        "\n",
        " ",
        "'",
        "''s 's's",
        "A.B.C. U.S.A. e.g. i.e. Mr. O'Neil O'NEIL",
        "http://example.com/path?q=1&r=2#frag user@example.org",
        "1e10 0x1F 3,141.59 -42 +7 10^9 2024-05-24 12:34:56",
    ]
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.environ.get("HRM_SHARED", "../shared"))
    ap.add_argument("--out", default="tests/fixtures/tokenizer")
    ap.add_argument("--retrain", action="store_true",
                    help="train a new tokenizer.json even if OUT/tokenizer.json exists (other tests use it: "
                         "retraining may change every id)")
    ap.add_argument("--bench-only", action="store_true",
                    help="only measure encoding speed with the existing OUT/tokenizer.json; write nothing")
    args = ap.parse_args()
    bench_dir = Path(args.shared) / "data" / "benchmarks"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    files = load_benchmarks(bench_dir)
    all_texts = [t for _, rows in files for _, texts in rows for _, t in texts]
    print(f"loaded {len(all_texts)} texts from {len(files)} files", file=sys.stderr)
    if args.bench_only:
        bench(Tokenizer.from_file(str(out / "tokenizer.json")), all_texts)
        return

    tok_path = out / "tokenizer.json"
    if args.retrain or not tok_path.exists():
        train(all_texts, tok_path)
    # Load from disk so every result below comes from exactly the committed file.
    tok = Tokenizer.from_file(str(tok_path))
    for i, t in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(t) == i, (t, tok.token_to_id(t))
    print(f"vocab size {tok.get_vocab_size()}", file=sys.stderr)
    write_parity(tok, files, out)
    write_samples(tok, files, out)
    bench(tok, all_texts)


def train(all_texts, tok_path):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(all_texts, trainer=trainer)
    tok.save(str(tok_path), pretty=False)


def write_parity(tok, files, out):
    n_texts = 0
    with open(out / "parity.txt", "w", encoding="utf-8", newline="\n") as f:
        f.write(f"# Made by scripts/make_tokenizer_fixture.py with tokenizers {tokenizers.__version__} from\n")
        f.write("# tests/fixtures/tokenizer/tokenizer.json and the benchmark JSONL files in $HRM_SHARED/data/benchmarks.\n")
        f.write("# Lines: 'file <relative path> <rows> <texts>', then one line per row in order:\n")
        f.write("# '<texts in row> <ids in row> <row hash, 16 hex digits>' (hash definition in the script).\n")
        for rel, rows in files:
            texts_in_file = sum(len(t) for _, t in rows)
            f.write(f"file {rel} {len(rows)} {texts_in_file}\n")
            for row, texts in rows:
                encs = tok.encode_batch([t for _, t in texts], add_special_tokens=False)
                h = FNV_OFFSET
                total = 0
                for e in encs:
                    h = fnv1a(le32([len(e.ids)]), h)
                    h = fnv1a(le32(e.ids), h)
                    total += len(e.ids)
                f.write(f"{len(texts)} {total} {h:016x}\n")
                n_texts += len(texts)
    print(f"parity: {n_texts} texts", file=sys.stderr)


def write_samples(tok, files, out):
    rng = random.Random(SEED)
    flat = [(rel, row, field, text) for rel, rows in files for row, texts in rows for field, text in texts]
    picked = []
    for rel, rows in files:
        k = 0
        for row, texts in rows:
            for field, text in texts:
                if k < SAMPLES_PER_FILE:
                    picked.append((rel, row, field, text))
                    k += 1
    picked += rng.sample(flat, RANDOM_SAMPLES)
    with open(out / "samples.jsonl", "w", encoding="utf-8", newline="\n") as f:
        def emit(obj):
            f.write(json.dumps(obj, ensure_ascii=True) + "\n")
        emit({"comment": "Made by scripts/make_tokenizer_fixture.py with tokenizers " + tokenizers.__version__
              + " from tokenizer.json. kind=bench: ids of a benchmark string named by file/row/field "
              "(text read from $HRM_SHARED), decode_hash = FNV-1a 64 of decode(ids) as UTF-8; "
              "kind=text: an adversarial string with its ids and decode; kind=decode: ids and the "
              "expected decode with skip_special false and true."})
        for rel, row, field, text in picked:
            ids = tok.encode(text, add_special_tokens=False).ids
            dec = tok.decode(ids, skip_special_tokens=False)
            emit({"kind": "bench", "file": rel, "row": row, "field": field, "ids": ids,
                  "decode_hash": f"{fnv1a(dec.encode('utf-8')):016x}"})
        for text in adversarial_strings():
            ids = tok.encode(text, add_special_tokens=False).ids
            emit({"kind": "text", "text": text, "ids": ids,
                  "decode": tok.decode(ids, skip_special_tokens=False),
                  "decode_skip": tok.decode(ids, skip_special_tokens=True)})
        # Decode cases: random ids (including lone byte tokens that make invalid UTF-8), special
        # tokens in between, and ids past the end of the vocabulary (which `tokenizers` skips).
        vocab_n = tok.get_vocab_size()
        byte_ids = [tok.token_to_id(c) for c in pre_tokenizers.ByteLevel.alphabet()]
        for case in range(120):
            n = rng.randint(1, 12)
            ids = []
            for _ in range(n):
                r = rng.random()
                if r < 0.4:
                    ids.append(rng.choice(byte_ids))
                elif r < 0.55:
                    ids.append(rng.randrange(len(SPECIAL_TOKENS)))
                elif r < 0.6:
                    ids.append(vocab_n + rng.randrange(100))
                else:
                    ids.append(rng.randrange(vocab_n))
            emit({"kind": "decode", "ids": ids,
                  "decode": tok.decode(ids, skip_special_tokens=False),
                  "decode_skip": tok.decode(ids, skip_special_tokens=True)})
        # A variant with non-special added tokens (normalized=True, `tokenizers`' default for
        # them): these are matched after NFC. The test appends `added_tokens` to the fixture's.
        variant = Tokenizer.from_str(tok.to_str())
        variant.add_tokens([AddedToken(c, normalized=True, special=False) for c in VARIANT_ADDED])
        extra = [t for t in json.loads(variant.to_str())["added_tokens"] if t["id"] >= len(SPECIAL_TOKENS)]
        emit({"kind": "added_variant", "added_tokens": extra})
        for text in VARIANT_TEXTS:
            ids = variant.encode(text, add_special_tokens=False).ids
            emit({"kind": "variant_text", "text": text, "ids": ids,
                  "decode": variant.decode(ids, skip_special_tokens=False),
                  "decode_skip": variant.decode(ids, skip_special_tokens=True)})


def bench(tok, all_texts):
    """Prints the Python encoding speed (wall and CPU time) for docs/TOKENIZER.md."""
    total_bytes = sum(len(t.encode("utf-8")) for t in all_texts)
    mb = total_bytes / 1e6
    for rep in range(2):
        t0, c0 = time.perf_counter(), time.process_time()
        for t in all_texts:
            tok.encode(t, add_special_tokens=False)
        loop_s, loop_cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"python tokenizers {tokenizers.__version__}: {len(all_texts)} texts, {mb:.2f} MB; "
              f"encode loop (1 thread) pass {rep + 1}: {loop_s:.2f} s = {mb / loop_s:.2f} MB/s (cpu {loop_cpu:.2f} s)")
    t0 = time.perf_counter()
    tok.encode_batch(all_texts, add_special_tokens=False)
    batch_s = time.perf_counter() - t0
    print(f"python tokenizers: encode_batch ({os.cpu_count()} cpus) {batch_s:.2f} s = {mb / batch_s:.2f} MB/s")


if __name__ == "__main__":
    main()
