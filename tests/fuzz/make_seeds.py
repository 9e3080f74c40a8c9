#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz (corpus/<target>/seed_*): small valid inputs that
start each fuzzer on the readers' real paths. Regression inputs (crash_*, found by fuzzing)
sit beside them and are never rewritten. Run from anywhere: python3 tests/fuzz/make_seeds.py"""
import gzip
import json
import pathlib
import struct

here = pathlib.Path(__file__).resolve().parent
root = here.parent.parent
corpus = here / "corpus"


def put(target, name, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed_" + name)).write_bytes(data if isinstance(data, bytes) else data.encode())


# fuzz_config: every shipped config, as the bytes of config.toml.
for toml in sorted((root / "configs").glob("*.toml")) + sorted(root.glob("sdk/examples/*/*.toml")):
    put("fuzz_config", toml.stem, toml.read_bytes())
put("fuzz_config", "residual", """[run]
steps = 2
[data]
reader = "synthetic"
[[model.layers]]
type = "linear"
units = 8
[[model.layers]]
type = "residual"
[[model.layers.layers]]
type = "layer_norm"
[[model.layers.layers]]
type = "linear"
units = 8
activation = "gelu"
[loss]
type = "mse"
[optimizer]
type = "adamw"
lr = 0.001
[optimizer.schedule]
type = "linear_warmup_cosine"
warmup_steps = 2
[parallel]
strategy = "pipeline"
stages = [[0, 0], [1, 1]]
""")


# fuzz_idx: byte 0 options, bytes 1-2 the images file's length, then images and labels.
def idx_images(count, rows, cols):
    return struct.pack(">IIII", 2051, count, rows, cols) + bytes(
        (i * 37) % 256 for i in range(count * rows * cols))


def idx_labels(labels):
    return struct.pack(">II", 2049, len(labels)) + bytes(labels)


def idx_input(flags, images, labels):
    return bytes([flags]) + struct.pack("<H", len(images)) + images + labels


put("fuzz_idx", "plain", idx_input(0, idx_images(3, 2, 2), idx_labels([0, 1, 9])))
put("fuzz_idx", "flat_limit", idx_input(1 | 4 | 0x20, idx_images(5, 3, 2), idx_labels([4, 3, 2, 1, 0])))
put("fuzz_idx", "gzip", idx_input(2, gzip.compress(idx_images(2, 4, 4), mtime=0),
                                  gzip.compress(idx_labels([7, 9]), mtime=0)))
put("fuzz_idx", "pread", idx_input(8, idx_images(4, 2, 3), idx_labels([1, 1, 2, 3])))

# fuzz_csv: byte 0 options, then the file.
iris = (root / "configs" / "data" / "iris.csv").read_text().splitlines()
put("fuzz_csv", "iris", "\x00" + "\n".join(iris[:12]) + "\n")
put("fuzz_csv", "numbers_no_header", "\x01" + "1,0.5,2\n0,1.5,-3\n2,+4,1e3\n")
put("fuzz_csv", "regression_semicolon", "\x06" + "x;y;label\n1;2;0.5\n3;\"4\";-1.25\r\n")
put("fuzz_csv", "test_split", "\x48" + "a,b,label\n1,2,cat\n3,4,dog\n5,6,cat\n7,8,bird\n")


# fuzz_text: byte 0 options (context, mode, stride, split), then the file.
put("fuzz_text", "ascii", "\x03" + "The quick brown fox jumps over the lazy dog.\n" * 3)
put("fuzz_text", "unicode_test_split", b"\x62" + ("caf\u00e9 \u4e2d\u6587 \U0001F600 " * 4).encode())
put("fuzz_text", "bytes_strided", b"\x1c" + bytes(range(256)))


# fuzz_tokens: byte 0 options (context, vocabulary, stride, split), then an llm.c token file.
def llmc_tokens(ids, magic=20240520, version=1, count=None):
    header = struct.pack("<3i", magic, version, len(ids) if count is None else count) + bytes(253 * 4)
    return header + struct.pack("<%dH" % len(ids), *ids)


put("fuzz_tokens", "gpt2_ids", b"\x03" + llmc_tokens([(i * 997) % 50257 for i in range(64)]))
put("fuzz_tokens", "small_vocabulary", b"\x5a" + llmc_tokens([(i * 7) % 320 for i in range(48)]))
put("fuzz_tokens", "truncated", b"\x01" + llmc_tokens(list(range(20)), count=40))

def safetensors(tensors, metadata):
    header, data, offset = {}, b"", 0
    if metadata:
        header["__metadata__"] = metadata
    for name, shape, values in tensors:
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text.encode() + data


# fuzz_checkpoint: byte 0 even, a step_N.safetensors as graft writes it; odd, a step_N.json.
put("fuzz_checkpoint", "two_tensors", b"\x00" +
    safetensors([("layers.0.weight", [2, 3], [0.5, -1, 2, 3, 4, 5]), ("layers.0.bias", [2], [1, 2])],
                {"format": "pt", "graft": "0.1.0"}))
put("fuzz_checkpoint", "scalar_and_empty", b"\x00" +
    safetensors([("step", [], [7.0]), ("none", [0, 4], [])], {}))
put("fuzz_checkpoint", "meta", b"\x01" + json.dumps(
    {"step": 120, "epoch": 2, "batch_in_epoch": 7, "seed": 42, "optimizer_steps": 120,
     "optimizer_state": ["momentum"]}, indent=2).encode())

# fuzz_plugin_info: bytes the FuzzedDataProvider turns into descriptions.
put("fuzz_plugin_info", "one", bytes(range(256)))
put("fuzz_plugin_info", "zeros", bytes(96) + b"units = 4\nbeta = 1.5\nname = \"x\"\n")
put("fuzz_plugin_info", "ones", bytes([1]) * 200 + b"[x]\ny = [1, 2]\n")
