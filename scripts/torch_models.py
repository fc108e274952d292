"""The four pipewright models (mlp, cnn, vit, gpt) in PyTorch, with the same state-dict names and
shapes as src/nn/models (each model is `self.layers = nn.Sequential(...)` of the units a pipeline
partitions). Used by make_fixtures.py, the checkpoint check and the PyTorch benchmark. Specs are the
same plain dicts as the TypeScript ModelSpec, with the same defaults.
"""
import math

import torch
from torch import nn

MODEL_NAMES = ["mlp", "cnn", "vit", "gpt"]

DEFAULTS = {
    "mlp": {"name": "mlp", "input": 784, "hidden": [1024, 1024], "classes": 10},
    "cnn": {"name": "cnn", "image": 28, "inChannels": 1, "channels": [32, 64], "hidden": 128, "classes": 10,
            "norm": "none", "groups": 0},
    "vit": {"name": "vit", "image": 28, "inChannels": 1, "patch": 7, "dim": 64, "depth": 4, "heads": 4, "classes": 10},
    "gpt": {"name": "gpt", "vocab": 256, "dim": 256, "heads": 4, "depth": 4, "context": 128},
}

# The `pipewright bench engine` configurations (mirror BENCH_CONFIGS in src/nn/models/index.ts).
BENCH_CONFIGS = [
    {"model": "mlp", "spec": {"name": "mlp", "input": 784, "hidden": [1024, 1024], "classes": 10}, "batch": 128,
     "inputShape": [128, 1, 28, 28], "classes": 10},
    {"model": "cnn", "spec": {"name": "cnn", "channels": [32, 64], "hidden": 128, "classes": 10, "norm": "none"},
     "batch": 64, "inputShape": [64, 1, 28, 28], "classes": 10},
    {"model": "gpt", "spec": {"name": "gpt", "vocab": 256, "dim": 256, "heads": 4, "depth": 4, "context": 128},
     "batch": 16, "inputShape": [16, 128], "classes": 256},
]


def resolve_spec(spec):
    name = spec.get("name")
    if name not in DEFAULTS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(MODEL_NAMES)}")
    unknown = set(spec) - set(DEFAULTS[name])
    if unknown:
        raise ValueError(f"model {name!r}: unknown fields {sorted(unknown)}; valid: {', '.join(DEFAULTS[name])}")
    return {**DEFAULTS[name], **spec}


class MultiHeadAttention(nn.Module):
    """Fused qkv Linear [3D, D] (rows q|k|v), heads by reshape/permute, softmax(q k^T / sqrt(dh)) v, proj."""

    def __init__(self, dim, heads, causal=False):
        super().__init__()
        self.dim, self.heads, self.head_dim, self.causal = dim, heads, dim // heads, causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (z.reshape(b, t, self.heads, self.head_dim).permute(0, 2, 1, 3) for z in self.qkv(x).split(d, dim=-1))
        scores = (q @ k.transpose(2, 3)) * (1 / math.sqrt(self.head_dim))
        if self.causal:
            mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
            scores = scores.masked_fill(mask, float("-inf"))
        ctx = torch.softmax(scores, dim=-1) @ v
        return self.proj(ctx.permute(0, 2, 1, 3).reshape(b, t, d))


class TransformerBlock(nn.Module):
    """Pre-norm: x + attn(ln1(x)); x + mlp(ln2(x)), mlp = Linear(D, 4D), GELU, Linear(4D, D)."""

    def __init__(self, dim, heads, causal=False, mlp_ratio=4):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads, causal)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class PatchEmbedding(nn.Module):
    def __init__(self, image, in_channels, patch, dim):
        super().__init__()
        tokens = (image // patch) ** 2
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2) + self.pos_embed


class TokenMean(nn.Module):
    def forward(self, x):
        return x.mean(dim=1)


class TokenPositionEmbedding(nn.Module):
    """ids [B, T] (integer values, any dtype) -> tok(ids) + pos(0..T-1)."""

    def __init__(self, vocab, context, dim):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(context, dim)

    def forward(self, ids):
        ids = ids.long()
        return self.tok(ids) + self.pos(torch.arange(ids.shape[1]))


class Model(nn.Module):
    def __init__(self, spec, units):
        super().__init__()
        self.spec = spec
        self.layers = nn.Sequential(*units)

    def forward(self, x):
        return self.layers(x)


def _units(s):
    name = s["name"]
    if name == "mlp":
        units, width = [nn.Flatten()], s["input"]
        for h in s["hidden"]:
            units += [nn.Linear(width, h), nn.ReLU()]
            width = h
        return units + [nn.Linear(width, s["classes"])]
    if name == "cnn":
        units, c, side = [], s["inChannels"], s["image"]
        for out in s["channels"]:
            # No conv bias before BatchNorm: the mean subtraction cancels it (zero gradient).
            units.append(nn.Conv2d(c, out, 3, padding=1, bias=s["norm"] != "batch"))
            if s["norm"] == "batch":
                units.append(nn.BatchNorm2d(out))
            elif s["norm"] == "group":
                units.append(nn.GroupNorm(s["groups"] or math.gcd(out, 8), out))
            units += [nn.ReLU(), nn.MaxPool2d(2)]
            c, side = out, side // 2
        return units + [nn.Flatten(), nn.Linear(c * side * side, s["hidden"]), nn.ReLU(), nn.Linear(s["hidden"], s["classes"])]
    if name == "vit":
        units = [PatchEmbedding(s["image"], s["inChannels"], s["patch"], s["dim"])]
        units += [TransformerBlock(s["dim"], s["heads"]) for _ in range(s["depth"])]
        return units + [nn.LayerNorm(s["dim"]), TokenMean(), nn.Linear(s["dim"], s["classes"])]
    if name == "gpt":
        units = [TokenPositionEmbedding(s["vocab"], s["context"], s["dim"])]
        units += [TransformerBlock(s["dim"], s["heads"], causal=True) for _ in range(s["depth"])]
        return units + [nn.LayerNorm(s["dim"]), nn.Linear(s["dim"], s["vocab"])]
    raise AssertionError(name)


def create_model(spec):
    s = resolve_spec(spec)
    return Model(s, _units(s))


def input_shape(spec, batch):
    s = resolve_spec(spec)
    if s["name"] == "mlp":
        return [batch, s["input"]]
    if s["name"] == "gpt":
        return [batch, s["context"]]
    return [batch, s["inChannels"], s["image"], s["image"]]
