#!/usr/bin/python3
"""Generates fixtures/ops/ops.json, PyTorch's answers for single ops, checked by test/ops-torch.test.ts.

Run with Debian's torch:  /usr/bin/python3 scripts/make_op_fixtures.py

Each case lists float32-representable inputs, op parameters, the output, a random weight tensor r and
the gradients of sum(out * r) with respect to every float input. Computation runs in float64 so the
stored values are the exact answer rounded once to float32.
"""
import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "ops", "ops.json")
g = torch.Generator().manual_seed(20240601)


def randn(*shape, scale=1.0):
    return (torch.randn(tuple(shape), generator=g) * scale).float().double()


def uniform(lo, hi, *shape):
    return (lo + (hi - lo) * torch.rand(tuple(shape), generator=g)).float().double()


def num(v):
    # JSON has no infinities: -inf (masked entries) is written as the string "-inf".
    return v if v == v and abs(v) != float("inf") else ("-inf" if v < 0 else str(v))


def enc(t):
    return {"shape": list(t.shape), "data": [num(float(v)) for v in t.detach().float().reshape(-1).tolist()]}


cases = []


def case(name, op, inputs, fn, params=None, extra=None):
    ins = [t.clone().requires_grad_(True) for t in inputs]
    out = fn(*ins)
    r = randn(*out.shape)
    mask = torch.isfinite(out)
    r = torch.where(mask, r, torch.zeros_like(r))
    loss = (torch.where(mask, out, torch.zeros_like(out)) * r).sum()
    grads = torch.autograd.grad(loss, ins, allow_unused=True)
    c = {
        "name": name, "op": op, "params": params or {},
        "inputs": [enc(t) for t in inputs],
        "out": enc(out), "r": enc(r),
        "grads": [enc(gr if gr is not None else torch.zeros_like(t)) for gr, t in zip(grads, inputs)],
    }
    if extra:
        c.update(extra)
    cases.append(c)


for op, f, lo in [("gelu", F.gelu, None), ("tanh", torch.tanh, None), ("sigmoid", torch.sigmoid, None),
                  ("exp", torch.exp, None), ("log", torch.log, 0.2), ("sqrt", torch.sqrt, 0.2)]:
    x = uniform(lo, 4.0, 3, 4) if lo else randn(3, 4, scale=3.0)
    case(op, op, [x], f)

a, b = randn(2, 3, 4), uniform(0.5, 2.0, 3, 1)
for op, f in [("add", torch.add), ("sub", torch.sub), ("mul", torch.mul), ("div", torch.div)]:
    case(f"{op} broadcast", op, [a, b], f)

case("matmul batched transB", "matmul", [randn(2, 3, 4), randn(2, 5, 4)], lambda x, y: x @ y.transpose(-1, -2),
     {"transB": True})
case("matmul shared b transA", "matmul", [randn(2, 4, 3), randn(4, 5)], lambda x, y: x.transpose(-1, -2) @ y,
     {"transA": True})
case("linear 3-D", "linear", [randn(2, 3, 4), randn(5, 4), randn(5)], F.linear)
case("sum axes", "sum", [randn(2, 3, 4)], lambda x: x.sum(dim=(0, 2)), {"axis": [0, 2], "keepdim": False})
case("mean keepdim", "mean", [randn(2, 3, 4)], lambda x: x.mean(dim=1, keepdim=True), {"axis": 1, "keepdim": True})
case("max axis", "max", [randn(3, 5)], lambda x: x.max(dim=1).values, {"axis": 1})
case("softmax axis 1", "softmax", [randn(2, 3, 4, scale=2.0)], lambda x: F.softmax(x, dim=1), {"axis": 1})
case("logSoftmax last", "logSoftmax", [randn(3, 6, scale=4.0)], lambda x: F.log_softmax(x, dim=-1), {"axis": -1})
tg = [1, 0, 4, 2, 4]
case("crossEntropy mean", "crossEntropy", [randn(5, 5, scale=2.0)],
     lambda x: F.cross_entropy(x, torch.tensor(tg)), {"targets": tg, "reduction": "mean"})
case("crossEntropy sum", "crossEntropy", [randn(5, 5, scale=2.0)],
     lambda x: F.cross_entropy(x, torch.tensor(tg), reduction="sum"), {"targets": tg, "reduction": "sum"})
case("mseLoss", "mseLoss", [randn(3, 4), randn(3, 4)], F.mse_loss)
case("layerNorm", "layerNorm", [randn(2, 3, 6, scale=2.0), uniform(0.5, 1.5, 6), randn(6)],
     lambda x, w, bb: F.layer_norm(x, (6,), w, bb, 1e-5))
case("groupNorm", "groupNorm", [randn(2, 4, 3, 3, scale=2.0), uniform(0.5, 1.5, 4), randn(4)],
     lambda x, w, bb: F.group_norm(x, 2, w, bb, 1e-5), {"groups": 2})

rm0, rv0 = randn(4), uniform(0.5, 2.0, 4)
rm, rv = rm0.clone(), rv0.clone()
case("batchNorm train", "batchNorm", [randn(3, 4, 2, 2, scale=2.0), uniform(0.5, 1.5, 4), randn(4)],
     lambda x, w, bb: F.batch_norm(x, rm, rv, w, bb, training=True, momentum=0.1, eps=1e-5),
     {"training": True, "runningMean": enc(rm0)["data"], "runningVar": enc(rv0)["data"]})
cases[-1]["runningMeanAfter"] = enc(rm)["data"]
cases[-1]["runningVarAfter"] = enc(rv)["data"]
case("batchNorm eval", "batchNorm", [randn(3, 4, 2, 2, scale=2.0), uniform(0.5, 1.5, 4), randn(4)],
     lambda x, w, bb: F.batch_norm(x, rm0, rv0, w, bb, training=False, eps=1e-5),
     {"training": False, "runningMean": enc(rm0)["data"], "runningVar": enc(rv0)["data"]})

case("conv2d stride pad", "conv2d", [randn(2, 3, 7, 6), randn(4, 3, 3, 2), randn(4)],
     lambda x, w, bb: F.conv2d(x, w, bb, stride=(2, 1), padding=(1, 2)), {"stride": [2, 1], "padding": [1, 2]})
case("conv2d plain", "conv2d", [randn(1, 2, 5, 5), randn(3, 2, 3, 3), randn(3)],
     lambda x, w, bb: F.conv2d(x, w, bb), {"stride": [1, 1], "padding": [0, 0]})
case("maxPool2d pad", "maxPool2d", [randn(2, 2, 5, 5)],
     lambda x: F.max_pool2d(x, 3, 2, 1), {"kernel": 3, "stride": 2, "padding": 1})
case("avgPool2d pad", "avgPool2d", [randn(2, 2, 5, 5)],
     lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=True), {"kernel": 3, "stride": 2, "padding": 1})
ids = [[1, 4, 1], [0, 3, 2]]
case("embedding", "embedding", [randn(5, 3)], lambda w: F.embedding(torch.tensor(ids), w), {"ids": ids})
case("causalMask", "causalMask", [randn(2, 4, 4)],
     lambda x: x.masked_fill(torch.triu(torch.ones(4, 4, dtype=torch.bool), 1), float("-inf")))

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump({"generator": "scripts/make_op_fixtures.py", "torch": torch.__version__, "cases": cases}, f)
print(f"wrote {len(cases)} cases to {os.path.relpath(OUT)}")
