#!/usr/bin/python3
"""The PyTorch side of `pipewright bench compare`: the same three models (scripts/torch_models.py,
BENCH_CONFIGS), the same measurement as `pipewright bench engine`: one thread, SGD momentum 0.9,
forward + cross-entropy + backward + step on random data, median of the timed steps after warm-up.
Prints one JSON object per line: {"model", "batch", "step_ms", "samples_per_s", "peak_rss_mb", ..., "parameters"}.

Run with Debian's interpreter (python3-torch): /usr/bin/python3 scripts/bench_torch.py [--models mlp,cnn,gpt]
or, for a sized model (what `pipewright bench compare --model gpt --layers 6 ...` passes), --config JSON.
Each model runs in its own subprocess so that peak_rss_mb is that model's own peak.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import torch
except ImportError:
    sys.stderr.write(f"bench_torch.py: PyTorch is not installed for {sys.executable}; "
                     "install Debian's python3-torch (`apt-get install -y python3-torch` or `scripts/setup --with-torch`)\n")
    sys.exit(3)

import torch.nn.functional as F
from torch_models import BENCH_CONFIGS, create_model, resolve_spec

NAMES = [c["model"] for c in BENCH_CONFIGS]


def make_step(cfg, seed):
    """One training step of cfg, ready to run repeatedly (model, data and optimizer built once)."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = create_model(cfg["spec"])
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    shape, classes = cfg["inputShape"], cfg["classes"]
    if cfg["model"] == "gpt":
        x = torch.randint(0, classes, shape).float()
        y = torch.randint(0, classes, (shape[0] * shape[1],))
    else:
        x = torch.randn(*shape)
        y = torch.randint(0, classes, (shape[0],))

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y)
        loss.backward()
        opt.step()
    step.parameters = sum(p.numel() for p in model.parameters())
    return step


def bench_one(cfg, steps, warmup, seed):
    step = make_step(cfg, seed)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        step()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt * 1000)
    step_ms = statistics.median(times)
    return {
        "model": cfg["model"],
        "batch": cfg["batch"],
        "step_ms": round(step_ms, 3),
        "samples_per_s": round(cfg["batch"] * 1000 / step_ms, 1),
        # ru_maxrss is in kilobytes on Linux.
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "backend": f"torch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "steps": steps,
        "parameters": step.parameters,
    }


def serve(cfg, seed):
    """Step on demand, for `bench compare --interleaved`: prints "ready", then for every line "step"
    on stdin runs one step and prints its milliseconds; ends at end of input."""
    step = make_step(cfg, seed)
    print(json.dumps({"ready": True, "backend": f"torch {torch.__version__}", "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            sys.stderr.write(f"bench_torch.py --serve: unknown request {line.strip()!r}; valid: step\n")
            sys.exit(2)
        t0 = time.perf_counter()
        step()
        print(round((time.perf_counter() - t0) * 1000, 4), flush=True)


def parse_config(p, text):
    """A sized configuration from --config, checked: the spec must build (the same fields as ModelSpec)."""
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        p.error(f"--config: not valid JSON ({e})")
    need = ["model", "spec", "batch", "inputShape", "classes"]
    if not isinstance(cfg, dict) or any(k not in cfg for k in need):
        p.error(f"--config must be a JSON object with {', '.join(need)}; got {text[:200]}")
    try:
        spec = resolve_spec(cfg["spec"])
    except ValueError as e:
        p.error(f"--config: {e}")
    if spec["name"] != cfg["model"]:
        p.error(f"--config: model {cfg['model']!r} but its spec names {spec['name']!r}")
    return {**cfg, "spec": spec}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=",".join(NAMES), help=f"comma-separated subset of {','.join(NAMES)}")
    p.add_argument("--steps", type=int, default=10, help="timed steps (median reported; at least 5)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--in-process", action="store_true", help="run every model in this process")
    p.add_argument("--serve", action="store_true", help="one model: run a step per 'step' line on stdin, print its ms")
    p.add_argument("--config", help="one sized configuration as JSON (what `bench compare --model ...` passes): "
                   '{"model", "spec": a ModelSpec, "batch", "inputShape", "classes"}; replaces --models')
    a = p.parse_args()
    if a.config is not None:
        if a.steps < 5:
            p.error(f"--steps {a.steps}: at least 5 timed steps are needed for a median")
        print(json.dumps(bench_one(parse_config(p, a.config), a.steps, a.warmup, a.seed)), flush=True)
        return
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    bad = [m for m in models if m not in NAMES]
    if bad or not models:
        p.error(f"--models: unknown model(s) {bad}; valid: {', '.join(NAMES)}")
    if a.steps < 5:
        p.error(f"--steps {a.steps}: at least 5 timed steps are needed for a median")
    if a.warmup < 0:
        p.error(f"--warmup {a.warmup} must be >= 0")
    if a.serve:
        if len(models) != 1:
            p.error(f"--serve runs one model; got --models {a.models}")
        serve(next(c for c in BENCH_CONFIGS if c["model"] == models[0]), a.seed)
        return
    if len(models) > 1 and not a.in_process:
        for m in models:
            args = [sys.executable, os.path.abspath(__file__), "--models", m, "--steps", str(a.steps),
                    "--warmup", str(a.warmup), "--seed", str(a.seed)]
            r = subprocess.run(args, stdout=subprocess.PIPE, text=True)
            if r.returncode != 0:
                sys.exit(r.returncode)
            sys.stdout.write(r.stdout)
            sys.stdout.flush()
        return
    for cfg in BENCH_CONFIGS:
        if cfg["model"] in models:
            print(json.dumps(bench_one(cfg, a.steps, a.warmup, a.seed)), flush=True)


if __name__ == "__main__":
    main()
