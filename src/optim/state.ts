// Optimizer state in plain form, and merging/slicing it by parameter. A checkpoint holds one
// single-device-shaped state (one group, parameters in model order); a run split across stages or
// threads holds one state per part. These helpers merge part states into that shape and cut it back
// per part; the plain form (no Tensor objects) is what crosses worker threads.
import { Tensor } from "../tensor/tensor.js";
import type { OptimizerState } from "./optimizer.js";

/** A named tensor as plain arrays (state dicts and optimizer state cross threads this way). */
export type StateEntry = [name: string, data: Float32Array, shape: number[]];

export interface PlainOptimizerState {
  kind: string;
  groups: OptimizerState["groups"];
  steps: Record<string, number>;
  tensors: StateEntry[];
}

export function toPlain(s: OptimizerState): PlainOptimizerState {
  return {
    kind: s.kind,
    groups: s.groups.map((g) => ({ hyper: { ...g.hyper }, baseLr: g.baseLr, params: [...g.params] })),
    steps: { ...s.steps },
    tensors: [...s.tensors].map(([k, t]) => [k, t.data.slice(), [...t.shape]]),
  };
}

export function fromPlain(p: PlainOptimizerState): OptimizerState {
  return {
    kind: p.kind,
    groups: p.groups.map((g) => ({ hyper: { ...g.hyper }, baseLr: g.baseLr, params: [...g.params] })),
    steps: { ...p.steps },
    tensors: new Map(p.tensors.map(([k, data, shape]) => [k, new Tensor(data, shape)])),
  };
}

/** One group over every part's parameters, in `order` (the model's parameter order). */
export function mergeStates(parts: readonly OptimizerState[], order: readonly string[]): OptimizerState {
  if (parts.length === 0) throw new Error("no optimizer states to merge");
  const known = new Set(parts.flatMap((p) => p.groups.flatMap((g) => g.params)));
  const allTensors: [string, Tensor][] = [];
  const allSteps: Record<string, number> = {};
  for (const p of parts) {
    if (p.kind !== parts[0].kind) throw new Error(`stages use different optimizers: ${parts[0].kind} and ${p.kind}`);
    allTensors.push(...p.tensors);
    Object.assign(allSteps, p.steps);
  }
  // In the model's order whatever stages share a worker (a V puts the first and last together), so
  // the merged state is the same for every placement.
  const rank = new Map(order.map((n, i) => [n, i]));
  const at = (param: string): number => rank.get(param) ?? order.length;
  const tensors = new Map(allTensors.sort(([x], [y]) => at(x.slice(0, x.lastIndexOf("."))) - at(y.slice(0, y.lastIndexOf(".")))));
  const steps = Object.fromEntries(Object.entries(allSteps).sort(([x], [y]) => at(x) - at(y)));
  const g = parts[0].groups[0];
  return { kind: parts[0].kind, groups: [{ hyper: { ...g.hyper }, baseLr: g.baseLr, params: order.filter((n) => known.has(n)) }], steps, tensors };
}

/** The part of a single-group state that belongs to the parameters `names` (one stage). */
export function sliceState(full: OptimizerState, names: readonly string[]): OptimizerState {
  if (full.groups.length !== 1) throw new Error(`a pipeline resumes optimizer state with one parameter group, got ${full.groups.length}`);
  const mine = new Set(names);
  const missing = names.filter((n) => !full.groups[0].params.includes(n));
  if (missing.length) throw new Error(`optimizer state lacks parameters ${missing.join(", ")}`);
  const tensors = new Map<string, Tensor>();
  for (const [k, t] of full.tensors) if (mine.has(k.slice(0, k.lastIndexOf(".")))) tensors.set(k, t);
  const steps: Record<string, number> = {};
  for (const [k, v] of Object.entries(full.steps)) if (mine.has(k)) steps[k] = v;
  const g = full.groups[0];
  return { kind: full.kind, groups: [{ hyper: { ...g.hyper }, baseLr: g.baseLr, params: [...names] }], steps, tensors };
}
