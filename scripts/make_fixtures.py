#!/usr/bin/python3
"""Generates the PyTorch fixtures in fixtures/torch/ that test/torch-fixtures.test.ts checks against.

Run with Debian's torch:  /usr/bin/python3 scripts/make_fixtures.py

For each small model configuration below it writes <id>.json (manifest) and <id>.bin (float32
little-endian tensors at the manifest's offsets):
  input, targets, init/<name> (state dict before the step, norm affines perturbed away from 1/0 so
  they are exercised), logits, loss (cross-entropy, mean over rows), grad/<param>, buffers/<name>
  (state after the training forward, e.g. BatchNorm running stats), logits_eval (eval-mode forward
  after that), and the weights after one and two optimizer steps from init with the recorded
  gradients held fixed (sgd1/, sgd2/, adamw1/, adamw2/) so momentum and Adam's bias correction are
  exercised. state_dicts.json lists the state-dict names and shapes of full-size models. Optimizers use two parameter groups: rank >= 2 tensors with the defaults, the rest with
  half the lr and no weight decay.
Computation runs in float64 from float32-representable inputs, so the stored values are the exact
answer rounded once to float32.
"""
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import BENCH_CONFIGS, create_model, resolve_spec  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "torch")

CONFIGS = [
    {"id": "mlp", "spec": {"name": "mlp", "input": 784, "hidden": [16, 16], "classes": 10}, "batch": 8},
    {"id": "cnn", "spec": {"name": "cnn", "channels": [4, 8], "hidden": 16, "classes": 10}, "batch": 4},
    {"id": "cnn_batch", "spec": {"name": "cnn", "channels": [4, 8], "hidden": 16, "classes": 10, "norm": "batch"}, "batch": 4},
    {"id": "cnn_group", "spec": {"name": "cnn", "channels": [4, 8], "hidden": 16, "classes": 10, "norm": "group", "groups": 2}, "batch": 4},
    {"id": "vit", "spec": {"name": "vit", "image": 28, "patch": 7, "dim": 16, "depth": 2, "heads": 2, "classes": 10}, "batch": 4},
    # T = 12 < context = 16 so position embeddings beyond T get no gradient.
    {"id": "gpt", "spec": {"name": "gpt", "vocab": 32, "dim": 16, "heads": 2, "depth": 2, "context": 16}, "batch": 4, "seq": 12},
]

SGD = {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weightDecay": 1e-2, "nesterov": True}
ADAMW = {"lr": 1e-2, "betas": [0.9, 0.99], "eps": 1e-8, "weightDecay": 0.1}
GROUP1 = {"lrFactor": 0.5, "weightDecay": 0.0}  # for parameters of rank < 2


def groups(model, hyper_lr):
    named = list(model.named_parameters())
    g0 = [p for _, p in named if p.dim() >= 2]
    g1 = [p for _, p in named if p.dim() < 2]
    return [{"params": g0}, {"params": g1, "lr": hyper_lr * GROUP1["lrFactor"], "weight_decay": GROUP1["weightDecay"]}]


def make_inputs(cfg, s, gen):
    b = cfg["batch"]
    if s["name"] == "gpt":
        t = cfg["seq"]
        x = torch.randint(0, s["vocab"], (b, t), generator=gen).double()
        y = torch.randint(0, s["vocab"], (b * t,), generator=gen)
        return x, y, s["vocab"]
    shape = [b, s["inChannels"], s["image"], s["image"]] if s["name"] != "mlp" else [b, 1, 28, 28]
    x = torch.randn(*shape, generator=gen).float().double()
    y = torch.randint(0, s["classes"], (b,), generator=gen)
    return x, y, s["classes"]


def perturb_norms(model, gen):
    for mod in model.modules():
        if isinstance(mod, (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.BatchNorm2d)):
            with torch.no_grad():
                mod.weight.copy_(1 + 0.2 * torch.randn(mod.weight.shape, generator=gen).float())
                mod.bias.copy_(0.2 * torch.randn(mod.bias.shape, generator=gen).float())
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.copy_(0.1 * torch.randn(mod.running_mean.shape, generator=gen).float())
            mod.running_var.copy_(1 + 0.1 * torch.rand(mod.running_var.shape, generator=gen).float())


def optimizer_runs(model, init, grads, make_opt, tag, put):
    model.load_state_dict(init)
    opt = make_opt(model)
    for name, p in model.named_parameters():
        p.grad = grads[name].clone()
    for step in (1, 2):
        opt.step()
        for name, p in model.named_parameters():
            put(f"{tag}{step}/{name}", p.detach())


def build(cfg):
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(4321)
    s = resolve_spec(cfg["spec"])
    model = create_model(s)
    perturb_norms(model, gen)
    # Round every weight to float32 first so both sides start from identical values.
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.float())
    model = model.double().train()
    x, y, classes = make_inputs(cfg, s, gen)
    init = {k: v.clone() for k, v in model.state_dict().items()}

    blobs, tensors = [], {}
    offset = 0

    def put(key, t):
        nonlocal offset
        arr = t.detach().to(torch.float32).contiguous().reshape(-1).tolist()
        tensors[key] = {"offset": offset, "shape": list(t.shape)}
        blobs.append(struct.pack(f"<{len(arr)}f", *arr))
        offset += len(arr)

    put("input", x)
    for k, v in init.items():
        put(f"init/{k}", v)
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, classes), y)
    loss.backward()
    put("logits", logits)
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    for n, g in grads.items():
        put(f"grad/{n}", g)
    buffer_names = [n for n, _ in model.named_buffers()]
    for n, b in model.named_buffers():
        put(f"buffers/{n}", b)
    model.eval()
    with torch.no_grad():
        put("logits_eval", model(x))
    model.train()

    optimizer_runs(model, init, grads, lambda m: torch.optim.SGD(
        groups(m, SGD["lr"]), lr=SGD["lr"], momentum=SGD["momentum"], dampening=SGD["dampening"],
        weight_decay=SGD["weightDecay"], nesterov=SGD["nesterov"]), "sgd", put)
    optimizer_runs(model, init, grads, lambda m: torch.optim.AdamW(
        groups(m, ADAMW["lr"]), lr=ADAMW["lr"], betas=tuple(ADAMW["betas"]), eps=ADAMW["eps"],
        weight_decay=ADAMW["weightDecay"]), "adamw", put)

    manifest = {
        "id": cfg["id"],
        "generator": f"scripts/make_fixtures.py, torch {torch.__version__}, float64 rounded to float32",
        "spec": cfg["spec"],
        "batch": cfg["batch"],
        "loss": loss.item(),
        "targets": y.tolist(),
        "stateNames": list(init.keys()),
        "paramNames": [n for n, _ in model.named_parameters()],
        "bufferNames": buffer_names,
        "sgd": SGD,
        "adamw": ADAMW,
        "group1": GROUP1,
        "tensors": tensors,
    }
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{cfg['id']}.bin"), "wb") as f:
        f.write(b"".join(blobs))
    with open(os.path.join(OUT, f"{cfg['id']}.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    return offset * 4


# Full-size specs whose state-dict names and shapes the TypeScript models must reproduce.
STATE_DICT_SPECS = [{"name": "mlp"}, {"name": "cnn"}, {"name": "cnn", "norm": "batch"}, {"name": "cnn", "norm": "group"},
                    {"name": "vit"}, {"name": "gpt"}]


def write_state_dicts():
    out = []
    for spec in STATE_DICT_SPECS:
        sd = create_model(spec).state_dict()
        out.append({"spec": spec, "state": [[k, list(v.shape)] for k, v in sd.items()]})
    with open(os.path.join(OUT, "state_dicts.json"), "w") as f:
        json.dump(out, f)
        f.write("\n")
    # The Python benchmark's configurations, so a test can check they equal BENCH_CONFIGS in TypeScript.
    with open(os.path.join(OUT, "bench_configs.json"), "w") as f:
        json.dump(BENCH_CONFIGS, f)
        f.write("\n")


def main():
    torch.set_num_threads(1)
    write_state_dicts()
    total = 0
    for cfg in CONFIGS:
        n = build(cfg)
        total += n
        print(f"{cfg['id']}: {n / 1024:.0f} KiB")
    print(f"total binary: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
