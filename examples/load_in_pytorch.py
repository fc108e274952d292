#!/usr/bin/python3
"""Example (d): load a model trained by pipewright into PyTorch.

    node examples/regression-mlp.mjs --save /tmp/mlp.safetensors
    /usr/bin/python3 examples/load_in_pytorch.py /tmp/mlp.safetensors

pipewright's pipe.save() writes safetensors (one file, or a manifest and one part per MPI rank): the weights under PyTorch's state-dict names (a user's
layer list is named like torch.nn.Sequential: "0.weight", "0.bias", "2.weight", ...), the optimizer
state under "optim.*" and trainer state under "extra.*" (skipped here). The script rebuilds the same
layers as a torch.nn.Sequential, loads the weights with strict checking, runs the inputs saved next to
the checkpoint (<file>.samples.json, written by the example) and compares PyTorch's outputs with
pipewright's. Exits 1 when they differ by more than --tol. Needs only json, struct, numpy and torch
(Debian: apt-get install python3-torch).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch


def read_safetensors(path):
    """{name: float32 ndarray} of a safetensors file (F32 tensors only, as pipewright writes)."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise SystemExit(f"{path}: tensor {name!r} has dtype {info['dtype']}; expected F32")
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(buf, dtype="<f4", count=(end - begin) // 4, offset=8 + n + begin).reshape(info["shape"])
    return out


def read_checkpoint(path):
    """read_safetensors of a single file, or of every part a manifest names, merged.

    With `--executor processes`, pipewright saves one part per MPI rank beside a manifest at the
    checkpoint path (metadata format "pipewright-manifest"; scripts/pipewright_checkpoint.py also
    checks each part's checksum).
    """
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        meta = json.loads(f.read(n).decode("utf-8")).get("__metadata__") or {}
    if meta.get("format") != "pipewright-manifest":
        return read_safetensors(path)
    out = {}
    for part in json.loads(meta["parts"]):
        full = os.path.join(os.path.dirname(os.path.abspath(path)), part["file"])
        if not os.path.exists(full):
            raise SystemExit(f"{path} is incomplete: part {part['file']} is missing")
        out.update(read_safetensors(full))
    return out


def build(layers, state):
    """torch.nn.Sequential of the named layer kinds; Linear sizes come from the saved weights."""
    mods = []
    for i, kind in enumerate(layers):
        if kind == "linear":
            out_f, in_f = state[f"{i}.weight"].shape
            mods.append(torch.nn.Linear(in_f, out_f))
        elif kind == "relu":
            mods.append(torch.nn.ReLU())
        else:
            raise SystemExit(f"unknown layer kind {kind!r}")
    return torch.nn.Sequential(*mods)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--samples", help="inputs and pipewright's outputs (default: <checkpoint>.samples.json)")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    tensors = read_checkpoint(a.checkpoint)
    state = {k: torch.from_numpy(v.copy()) for k, v in tensors.items() if not k.startswith(("optim.", "extra."))}
    with open(a.samples or a.checkpoint + ".samples.json") as f:
        samples = json.load(f)
    model = build(samples["layers"], state)
    model.load_state_dict(state, strict=True)  # every name and shape must match
    model.eval()
    x = torch.tensor(samples["input"]["data"], dtype=torch.float32).reshape(samples["input"]["shape"])
    want = np.array(samples["output"]["data"], dtype=np.float64).reshape(samples["output"]["shape"])
    with torch.no_grad():
        got = model.double()(x.double()).numpy()
    err = float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-12))
    print(json.dumps({"tensors": sorted(state), "max_rel_error": err, "ok": err <= a.tol}))
    return 0 if err <= a.tol else 1


if __name__ == "__main__":
    sys.exit(main())
