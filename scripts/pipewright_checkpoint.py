#!/usr/bin/python3
"""Reads pipewright checkpoints in Python (json, struct, hashlib and numpy only; no torch needed).

    /usr/bin/python3 scripts/pipewright_checkpoint.py CKPT.safetensors    # prints every tensor's name, shape and SHA-256

A checkpoint is either one safetensors file or, saved by `--executor processes` (one part per MPI rank),
a manifest: a safetensors file without tensors whose metadata has format "pipewright-manifest" and
"parts" = [{"file", "bytes", "sha256", "tensors"}], each part a safetensors file beside it. read_checkpoint
merges the parts (checking that each exists and matches its size and checksum) and returns the same
({name: float32 ndarray}, metadata) as for a single file, so PyTorch code reads both the same way
(src/checkpoint/parts.ts describes the format).
"""
import hashlib
import json
import os
import struct
import sys

import numpy as np


class BadInput(Exception):
    pass


def read_safetensors(path):
    """Returns ({name: float32 ndarray}, metadata) after the same checks as pipewright's reader."""
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except OSError as e:
        raise BadInput(f"{path}: {e.strerror}")
    if len(buf) < 8:
        raise BadInput(f"{path}: truncated: expected at least 8 bytes, found {len(buf)}")
    (n,) = struct.unpack("<Q", buf[:8])
    if 8 + n > len(buf):
        raise BadInput(f"{path}: truncated: header length {n} needs at least {8 + n} bytes, found {len(buf)}")
    try:
        header = json.loads(buf[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(f"{path}: header is not valid JSON ({e})")
    if not isinstance(header, dict):
        raise BadInput(f"{path}: header must be a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    entries = []
    for name, info in header.items():
        if info.get("dtype") != "F32":
            raise BadInput(f"{path}: tensor {name!r} has dtype {info.get('dtype')!r}; only F32 is supported")
        shape = info["shape"]
        begin, end = info["data_offsets"]
        if end - begin != 4 * int(np.prod(shape, dtype=np.int64)):
            raise BadInput(f"{path}: tensor {name!r} of shape {shape} spans {end - begin} bytes, needs {4 * int(np.prod(shape))}")
        entries.append((begin, end, name, shape))
    entries.sort()
    pos = 0
    for begin, end, name, _ in entries:
        if begin != pos:
            raise BadInput(f"{path}: tensor {name!r} starts at {begin}, expected {pos} (overlap or gap)")
        pos = end
    if 8 + n + pos != len(buf):
        what = "truncated: " if 8 + n + pos > len(buf) else ""
        raise BadInput(f"{path}: {what}expected {8 + n + pos} bytes, found {len(buf)}")
    base = 8 + n
    tensors = {name: np.frombuffer(buf, dtype="<f4", count=(end - begin) // 4, offset=base + begin).reshape(shape)
               for begin, end, name, shape in entries}
    return tensors, metadata



def read_checkpoint(path):
    """({name: float32 ndarray}, metadata) of a single-file checkpoint or of a manifest and its parts."""
    tensors, meta = read_safetensors(path)
    if meta.get("format") != "pipewright-manifest":
        return tensors, meta
    if meta.get("format_version") != "1":
        raise BadInput(f"{path}: manifest format_version {meta.get('format_version')!r} is not supported (this reader knows '1')")
    parts = json.loads(meta.get("parts", "[]"))
    merged = {}
    for i, part in enumerate(parts):
        name = part["file"]
        if os.path.basename(name) != name:
            raise BadInput(f"{path}: part name {name!r} must be a file in the checkpoint's directory")
        full = os.path.join(os.path.dirname(os.path.abspath(path)), name)
        if not os.path.exists(full):
            raise BadInput(f"{path} is incomplete: part {name} ({i + 1} of {len(parts)}) is missing")
        with open(full, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest != part["sha256"]:
            raise BadInput(f"{path}: part {name} does not match the manifest's SHA-256 (changed or corrupt)")
        got, _ = read_safetensors(full)
        for k, v in got.items():
            if k in merged:
                raise BadInput(f"{path}: tensor {k!r} appears in two parts (the second: {name})")
            merged[k] = v
    order = json.loads(meta.get("order", "[]"))
    out = {k: merged[k] for k in order}
    out.update({k: v for k, v in merged.items() if k not in out})
    meta = dict(meta, format="pipewright", format_version="1")
    return out, meta


def main():
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        tensors, meta = read_checkpoint(sys.argv[1])
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"step": meta.get("step"), "epoch": meta.get("epoch"),
                      "tensors": [[k, list(v.shape), hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()] for k, v in tensors.items()]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
