#!/usr/bin/python3
"""Loads a pipewright checkpoint into PyTorch and checks that PyTorch's forward gives pipewright's logits.

    /usr/bin/python3 scripts/check_checkpoint_torch.py CKPT.safetensors --inputs IN --logits OUT [--tol 1e-4]

CKPT      a checkpoint written by pipewright (src/checkpoint/checkpoint.ts; or a manifest and its parts, read by
          scripts/pipewright_checkpoint.py): model tensors under their
          state-dict names, optimizer buffers under "optim.*" and trainer state under "extra.*" (both
          ignored here), and the model's JSON spec in the safetensors metadata key "model_spec".
IN, OUT   the inputs pipewright ran and the logits it computed (in eval mode), each either
            .safetensors  tensor "input" / "logits" (or the file's only tensor); IN and OUT may be the
                          same file holding both
            .json         {"shape": [...], "data": [flat values]} or a nested list
          Token ids for gpt are float values, as pipewright passes them.

The model is rebuilt with scripts/torch_models.py (`create_model(spec)`), loaded with strict state-dict
checking (only BatchNorm's `num_batches_tracked`, which pipewright does not keep, may be missing), put
in eval mode and run in float64 on the float32 inputs, so the reference is the exact answer.
Prints max abs error, normwise relative error (max |a - b| / max |b|) and the largest element-wise
relative error (|a - b| / max(|b|, 1e-3)), and exits 1 when the normwise relative error exceeds --tol,
2 on bad input. Uses only json, struct, numpy and torch.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import create_model  # noqa: E402
from pipewright_checkpoint import BadInput, read_checkpoint, read_safetensors  # noqa: E402


def read_array(path, name):
    """One tensor from a .safetensors file (by name, or its only tensor) or a .json file."""
    if path.endswith(".json"):
        try:
            with open(path) as f:
                obj = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise BadInput(f"{path}: {e}")
        if isinstance(obj, dict):
            if name in obj and isinstance(obj[name], (dict, list)):
                obj = obj[name]
            if isinstance(obj, dict):
                if "shape" not in obj or "data" not in obj:
                    raise BadInput(f"{path}: expected {{\"shape\": [...], \"data\": [...]}} or a nested list")
                return np.asarray(obj["data"], dtype=np.float32).reshape(obj["shape"])
        return np.asarray(obj, dtype=np.float32)
    tensors, _ = read_safetensors(path)
    if name in tensors:
        return tensors[name]
    if len(tensors) == 1:
        return next(iter(tensors.values()))
    raise BadInput(f"{path}: no tensor named {name!r}; found {', '.join(sorted(tensors)) or 'none'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--inputs", required=True, help=".safetensors (tensor 'input') or .json")
    ap.add_argument("--logits", required=True, help=".safetensors (tensor 'logits') or .json")
    ap.add_argument("--tol", type=float, default=1e-4, help="max normwise relative error (default 1e-4)")
    args = ap.parse_args()
    try:
        tensors, meta = read_checkpoint(args.checkpoint)  # one file, or a manifest and its parts
        if "model_spec" not in meta:
            raise BadInput(f"{args.checkpoint}: metadata has no 'model_spec' (keys: {', '.join(sorted(meta)) or 'none'}); "
                           "save the checkpoint with modelSpec set")
        try:
            spec = json.loads(meta["model_spec"])
            model = create_model(spec)
        except (json.JSONDecodeError, ValueError) as e:
            raise BadInput(f"{args.checkpoint}: bad model_spec {meta['model_spec']!r}: {e}")
        state = {k: torch.from_numpy(v.copy()) for k, v in tensors.items() if not k.startswith(("optim.", "extra."))}
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatches
            raise BadInput(f"{args.checkpoint}: state dict does not fit model {spec}: {e}")
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise BadInput(f"{args.checkpoint}: state dict does not fit model {spec}: "
                           f"missing {missing or 'none'}; unexpected {unexpected or 'none'}")
        x = read_array(args.inputs, "input")
        ours = read_array(args.logits, "logits").astype(np.float64)
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    model = model.double().eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(x.astype(np.float64))).numpy()
    if ref.shape != ours.shape:
        print(f"error: pipewright logits have shape {list(ours.shape)}, PyTorch's {list(ref.shape)}", file=sys.stderr)
        return 2
    diff = np.abs(ours - ref)
    max_abs = float(diff.max()) if diff.size else 0.0
    rel = max_abs / max(float(np.abs(ref).max()) if ref.size else 0.0, 1e-30)
    elem_rel = float((diff / np.maximum(np.abs(ref), 1e-3)).max()) if diff.size else 0.0
    ok = rel <= args.tol
    print(json.dumps({"model": spec.get("name"), "step": meta.get("step"), "logits_shape": list(ref.shape),
                      "max_abs_err": max_abs, "max_rel_err": rel, "max_elementwise_rel_err": elem_rel,
                      "tol": args.tol, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
