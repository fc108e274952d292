// Our models against PyTorch (fixtures from scripts/make_fixtures.py, committed in fixtures/torch):
// same weights and inputs must give the same logits, loss, every parameter gradient, BatchNorm
// buffers, eval-mode logits, and weights after SGD (Nesterov momentum) and AdamW steps.
//
// Error measure, per tensor: rel = max|ours - torch| / max(max|torch|, 1e-6). Bound: 1e-4.
// Optimizer results are compared as updates (weights after k steps minus initial weights), so the
// bound applies to the change an optimizer makes rather than being swamped by the weights: there,
// rel = max_i max(0, |ours_i - torch_i| - 2^-22 |torch_i|) / max(max_i |torch_i - init_i|, 1e-6), the
// 2^-22 |w| allowance (two float32 ulps of the weight) discounting the unavoidable rounding of the
// stored weights themselves, which both sides hold in float32.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Tensor } from "../src/tensor/tensor.js";
import { backward } from "../src/autograd/index.js";
import { createModel, crossEntropyLoss, type Model, type ModelSpec } from "../src/nn/index.js";
import { AdamW, SGD, type NamedParams } from "../src/optim/index.js";

const DIR = new URL("../../fixtures/torch/", import.meta.url);
const TOL = 1e-4;

interface Manifest {
  id: string; spec: ModelSpec; batch: number; loss: number; targets: number[];
  stateNames: string[]; paramNames: string[]; bufferNames: string[];
  sgd: { lr: number; momentum: number; dampening: number; weightDecay: number; nesterov: boolean };
  adamw: { lr: number; betas: [number, number]; eps: number; weightDecay: number };
  group1: { lrFactor: number; weightDecay: number };
  tensors: Record<string, { offset: number; shape: number[] }>;
}

interface Fixture { m: Manifest; get(key: string): Tensor }

function loadFixture(id: string): Fixture {
  const m = JSON.parse(readFileSync(new URL(`${id}.json`, DIR), "utf8")) as Manifest;
  const buf = readFileSync(new URL(`${id}.bin`, DIR));
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return {
    m,
    get(key) {
      const e = m.tensors[key];
      if (!e) throw new Error(`fixture ${id} has no tensor '${key}'`);
      const n = e.shape.reduce((a, b) => a * b, 1);
      return new Tensor(all.slice(e.offset, e.offset + n), e.shape);
    },
  };
}

/** max|a - b| / max(max|b|, 1e-6). */
export function relErr(ours: Float32Array, torch: Float32Array): number {
  assert.equal(ours.length, torch.length, "tensor sizes differ");
  let diff = 0, scale = 0;
  for (let i = 0; i < torch.length; i++) {
    diff = Math.max(diff, Math.abs(ours[i] - torch[i]));
    scale = Math.max(scale, Math.abs(torch[i]));
  }
  return diff / Math.max(scale, 1e-6);
}

/** Relative error of the update ours - init against torch - init (see the header). */
function updateErr(ours: Float32Array, torch: Float32Array, init: Float32Array): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < torch.length; i++) {
    diff = Math.max(diff, Math.abs(ours[i] - torch[i]) - Math.abs(torch[i]) * 2 ** -22);
    scale = Math.max(scale, Math.abs(torch[i] - init[i]));
  }
  return Math.max(diff, 0) / Math.max(scale, 1e-6);
}

const IDS = ["mlp", "cnn", "cnn_batch", "cnn_group", "vit", "gpt"];
const summary: Record<string, Record<string, number>> = {};

function modelFrom(f: Fixture): Model {
  const model = createModel(f.m.spec, 0);
  const init = new Map(f.m.stateNames.map((n) => [n, f.get(`init/${n}`)]));
  model.loadStateDict(init);
  return model.train();
}

function groupsOf(model: Model): [NamedParams, NamedParams] {
  const named = model.namedParameters();
  return [named.filter(([, p]) => p.rank >= 2), named.filter(([, p]) => p.rank < 2)];
}

for (const id of IDS) {
  test(`torch fixture ${id}: state-dict names and shapes`, () => {
    const f = loadFixture(id);
    const sd = createModel(f.m.spec, 0).stateDict();
    assert.deepEqual([...sd.keys()], f.m.stateNames);
    for (const n of f.m.stateNames) assert.deepEqual([...sd.get(n)!.shape], f.m.tensors[`init/${n}`].shape, n);
  });

  test(`torch fixture ${id}: logits, loss, gradients, buffers`, () => {
    const f = loadFixture(id);
    const model = modelFrom(f);
    const errs: Record<string, number> = {};
    const logits = model.forward(f.get("input"));
    errs.logits = relErr(logits.data, f.get("logits").data);
    const loss = crossEntropyLoss(logits, Int32Array.from(f.m.targets));
    errs.loss = Math.abs(loss.item() - f.m.loss) / Math.max(Math.abs(f.m.loss), 1e-6);
    backward(loss);
    let worstGrad = 0, worstName = "";
    for (const [name, p] of model.namedParameters()) {
      const torchGrad = f.get(`grad/${name}`);
      const e = relErr(p.grad?.data ?? new Float32Array(p.size), torchGrad.data);
      if (e > worstGrad) { worstGrad = e; worstName = name; }
      assert.ok(e <= TOL, `${id} grad ${name}: relative error ${e.toExponential(2)} > ${TOL}`);
    }
    errs.grad = worstGrad;
    let worstBuf = 0;
    for (const [name, b] of model.namedBuffers()) worstBuf = Math.max(worstBuf, relErr(b.data, f.get(`buffers/${name}`).data));
    errs.buffers = worstBuf;
    model.eval();
    errs.logitsEval = relErr(model.forward(f.get("input")).data, f.get("logits_eval").data);
    summary[id] = { ...summary[id], ...errs };
    assert.ok(errs.logits <= TOL, `${id} logits: ${errs.logits}`);
    assert.ok(errs.loss <= TOL, `${id} loss: ours ${loss.item()} torch ${f.m.loss}`);
    assert.ok(errs.buffers <= TOL, `${id} buffers: ${errs.buffers}`);
    assert.ok(errs.logitsEval <= TOL, `${id} eval logits: ${errs.logitsEval}`);
    console.log(`# ${id}: worst gradient ${worstName || "(all exact)"}`);
  });

  for (const kind of ["sgd", "adamw"] as const) {
    test(`torch fixture ${id}: ${kind} two steps with fixed gradients`, () => {
      const f = loadFixture(id);
      const model = modelFrom(f);
      for (const [name, p] of model.namedParameters()) p.grad = f.get(`grad/${name}`);
      const [g0, g1] = groupsOf(model);
      const h = f.m[kind];
      const group1 = { params: g1, lr: h.lr * f.m.group1.lrFactor, weightDecay: f.m.group1.weightDecay };
      const opt = kind === "sgd"
        ? new SGD([{ params: g0 }, group1], f.m.sgd)
        : new AdamW([{ params: g0 }, group1], f.m.adamw);
      let worst = 0;
      for (const step of [1, 2]) {
        opt.step();
        for (const [name, p] of model.namedParameters()) {
          const init = f.get(`init/${name}`).data;
          const e = updateErr(p.data, f.get(`${kind}${step}/${name}`).data, init);
          worst = Math.max(worst, e);
          assert.ok(e <= TOL, `${id} ${kind} step ${step} ${name}: relative error of the update ${e.toExponential(2)}`);
        }
      }
      summary[id] = { ...summary[id], [kind]: worst };
    });
  }
}

test("torch fixtures: summary of relative errors", () => {
  for (const [id, errs] of Object.entries(summary)) {
    console.log(`# ${id}: ${Object.entries(errs).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(", ")}`);
  }
  assert.equal(Object.keys(summary).length, IDS.length);
});
