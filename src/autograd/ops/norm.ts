// Normalisations: layer norm (last axis), group norm and batch norm (NC... layout), as in torch.
import { getBackend } from "../../backend/index.js";
import { Tensor } from "../../tensor/tensor.js";
import { fmt, numel } from "../../tensor/shape.js";
import { gradBuffer, record } from "../engine.js";
import { checkTensor } from "./util.js";
import { allocFloat32 } from "../../tensor/host-arrays.js";

/** gamma/beta of a normalisation, defaulting to 1 and 0 (torch's affine=false) and checked to be [size]. */
function affineParams(op: string, x: Tensor, gamma: Tensor | null, beta: Tensor | null, size: number): [Tensor, Tensor] {
  for (const [name, p] of [["gamma", gamma], ["beta", beta]] as const) {
    if (p !== null && (p.rank !== 1 || p.shape[0] !== size)) {
      throw new Error(`${op}: input ${fmt(x.shape)} and ${name} ${fmt(p.shape)}: ${name} must be [${size}]`);
    }
  }
  return [gamma ?? Tensor.ones([size]), beta ?? Tensor.zeros([size])];
}

function checkEps(op: string, eps: number): void {
  if (!(eps > 0)) throw new Error(`${op}: eps ${eps} must be positive`);
}

/** Normalises over the last axis with biased variance, then x̂ γ + β (torch.nn.functional.layer_norm). */
export function layerNorm(x: Tensor, gamma: Tensor | null, beta: Tensor | null, eps = 1e-5): Tensor {
  checkTensor(x, "layerNorm", "input");
  checkEps("layerNorm", eps);
  if (x.rank < 1) throw new Error(`layerNorm: input ${fmt(x.shape)} needs at least one axis`);
  const cols = x.shape[x.rank - 1];
  const rows = cols === 0 ? 0 : x.size / cols;
  const [g, b] = affineParams("layerNorm", x, gamma, beta, cols);
  const be = getBackend();
  const out = Tensor.empty(x.shape); // overwritten by the kernel
  const mu = allocFloat32(rows);
  const rstd = allocFloat32(rows);
  be.layerNorm(x.data, g.data, b.data, rows, cols, eps, out.data, mu, rstd);
  return record(out, "layerNorm", [x, g, b], (dy, needs) => {
    // The kernel produces all three gradients together; unneeded ones are dropped.
    const dx = gradBuffer(x.size); // overwritten; dg and db accumulate, so they start at zero
    const dg = allocFloat32(cols);
    const db = allocFloat32(cols);
    be.layerNormBackward(x.data, g.data, dy, mu, rstd, rows, cols, dx, dg, db, false);
    return [needs[0] ? dx : null, needs[1] ? dg : null, needs[2] ? db : null];
  });
}

function channelLayout(op: string, x: Tensor): { n: number; c: number; hw: number } {
  if (x.rank < 2) throw new Error(`${op}: input ${fmt(x.shape)} must be [N, C, ...]`);
  return { n: x.shape[0], c: x.shape[1], hw: numel(x.shape.slice(2)) };
}

/** Group norm of x [N, C, ...]: statistics per sample over groups of C/groups channels. */
export function groupNorm(x: Tensor, groups: number, gamma: Tensor | null, beta: Tensor | null, eps = 1e-5): Tensor {
  checkTensor(x, "groupNorm", "input");
  checkEps("groupNorm", eps);
  const { n, c, hw } = channelLayout("groupNorm", x);
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0) {
    throw new Error(`groupNorm: ${groups} groups must be a positive integer dividing the ${c} channels of input ${fmt(x.shape)}`);
  }
  const [g, b] = affineParams("groupNorm", x, gamma, beta, c);
  const be = getBackend();
  const out = Tensor.zeros(x.shape);
  const mu = allocFloat32(n * groups);
  const rstd = allocFloat32(n * groups);
  be.groupNorm(x.data, g.data, b.data, n, c, hw, groups, eps, out.data, mu, rstd);
  return record(out, "groupNorm", [x, g, b], (dy, needs) => {
    const dx = allocFloat32(x.size);
    const dg = allocFloat32(c);
    const db = allocFloat32(c);
    be.groupNormBackward(x.data, g.data, dy, mu, rstd, n, c, hw, groups, dx, dg, db, false);
    return [needs[0] ? dx : null, needs[1] ? dg : null, needs[2] ? db : null];
  });
}

/**
 * Batch norm of x [N, C, ...]. Training: normalises with the batch's biased variance and updates
 * runningMean/runningVar in place (running = (1-momentum) running + momentum batch, unbiased
 * variance, like torch). Inference: normalises with the running statistics.
 */
export function batchNorm(x: Tensor, gamma: Tensor | null, beta: Tensor | null, runningMean: Tensor | null,
  runningVar: Tensor | null, training: boolean, momentum = 0.1, eps = 1e-5): Tensor {
  checkTensor(x, "batchNorm", "input");
  checkEps("batchNorm", eps);
  const { n, c, hw } = channelLayout("batchNorm", x);
  const [g, b] = affineParams("batchNorm", x, gamma, beta, c);
  for (const [name, r] of [["runningMean", runningMean], ["runningVar", runningVar]] as const) {
    if (r !== null && (r.rank !== 1 || r.shape[0] !== c)) {
      throw new Error(`batchNorm: input ${fmt(x.shape)} and ${name} ${fmt(r.shape)}: ${name} must be [${c}]`);
    }
  }
  if (!(momentum >= 0 && momentum <= 1)) throw new Error(`batchNorm: momentum ${momentum} must be in [0, 1]`);
  const be = getBackend();
  const out = Tensor.zeros(x.shape);
  const count = n * hw;

  if (training) {
    if (count <= 1) throw new Error(`batchNorm: input ${fmt(x.shape)} has ${count} value per channel; training needs more than 1`);
    const mu = allocFloat32(c);
    const variance = allocFloat32(c);
    const rstd = allocFloat32(c);
    be.batchNormTrain(x.data, g.data, b.data, n, c, hw, eps, out.data, mu, variance, rstd);
    if (runningMean) be.axpby(momentum, mu, 1 - momentum, runningMean.data);
    if (runningVar) be.axpby(momentum * count / (count - 1), variance, 1 - momentum, runningVar.data);
    return record(out, "batchNorm", [x, g, b], (dy, needs) => {
      const dx = allocFloat32(x.size);
      const dg = allocFloat32(c);
      const db = allocFloat32(c);
      be.batchNormBackward(x.data, g.data, dy, mu, rstd, n, c, hw, dx, dg, db, false);
      return [needs[0] ? dx : null, needs[1] ? dg : null, needs[2] ? db : null];
    });
  }

  if (!runningMean || !runningVar) throw new Error("batchNorm: inference needs runningMean and runningVar");
  const rm = runningMean.data.slice(); // snapshot: later training steps update the buffers in place
  const rv = runningVar.data.slice();
  be.batchNormInference(x.data, g.data, b.data, rm, rv, n, c, hw, eps, out.data);
  return record(out, "batchNorm", [x, g, b], (dy, needs) => {
    // Statistics are constants here: y = (x - m) rstd γ + β is affine per channel.
    const shape3 = [n, c, hw];
    const chan = [1, c, 1];
    const varEps = allocFloat32(c);
    be.affine(rv, 1, eps, varEps);
    const std = allocFloat32(c);
    be.unary("sqrt", varEps, std);
    const rstd = allocFloat32(c);
    be.binary("div", new Float32Array([1]), [1], std, [c], rstd, [c]);
    let dx: Float32Array | null = null;
    let dg: Float32Array | null = null;
    let db: Float32Array | null = null;
    if (needs[0]) {
      const scale = allocFloat32(c);
      be.binary("mul", g.data, [c], rstd, [c], scale, [c]);
      dx = allocFloat32(x.size);
      be.binary("mul", dy, shape3, scale, chan, dx, shape3);
    }
    const reduceNHW = (t: Float32Array): Float32Array => {
      const perC = allocFloat32(c * hw);
      be.sum(t, 1, n, c * hw, perC, false);
      const r = allocFloat32(c);
      be.sum(perC, c, hw, 1, r, false);
      return r;
    };
    if (needs[1]) {
      const xh = allocFloat32(x.size);
      be.binary("sub", x.data, shape3, rm, chan, xh, shape3);
      const t = allocFloat32(x.size);
      be.binary("mul", xh, shape3, rstd, chan, t, shape3);
      be.binary("mul", t, shape3, dy, shape3, xh, shape3);
      dg = reduceNHW(xh);
    }
    if (needs[2]) db = reduceNHW(dy);
    return [dx, dg, db];
  });
}
