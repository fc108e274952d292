// The tape: ops record a GradFn on their output; backward() walks the graph in reverse topological
// order, hands each GradFn its output gradient, and accumulates into leaves' `.grad`.
import { emptyFloat32, Tensor, type GradFn, type RowwiseGrad } from "../tensor/tensor.js";
import { fmt, sameShape } from "../tensor/shape.js";
import { allocFloat32, deviceArrays, sameMemory } from "../tensor/host-arrays.js";
import { getBackend } from "../backend/index.js";

let gradEnabled = true;

export function isGradEnabled(): boolean { return gradEnabled; }

/** Runs fn without recording operations (like torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try { return fn(); } finally { gradEnabled = prev; }
}

/** Enables recording inside fn even within noGrad (like torch.enable_grad()). */
export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try { return fn(); } finally { gradEnabled = prev; }
}

// Recycled gradient buffers (per thread). A backward pass allocates every intermediate gradient
// afresh and drops it one op later; V8 answers that churn of large ArrayBuffers with a garbage
// collection every few megabytes. Buffers handed out by gradBuffer() come back here once backward()
// has consumed them (and nothing else can hold them), so the next op, or the next step, reuses them.
const POOL_MIN = 4096; // elements; smaller arrays are cheap to allocate
const POOL_CAP_BYTES = 128 * 1024 * 1024; // per thread; beyond it, buffers are left to the GC
const pool = new Map<number, Float32Array[]>();
let pooledBytes = 0;
const fromPool = new WeakSet<Float32Array>();

/**
 * An uninitialised Float32Array of n elements for a gradient a backward rule returns (it must
 * overwrite every element). It may be a recycled buffer: never keep a reference to it.
 */
export function gradBuffer(n: number): Float32Array {
  if (n < POOL_MIN) return allocFloat32(n);
  const buf = pool.get(n)?.pop();
  if (buf) {
    pooledBytes -= buf.byteLength;
    return buf;
  }
  const fresh = emptyFloat32(n);
  fromPool.add(fresh);
  return fresh;
}

function recycle(g: Float32Array): void {
  if (!fromPool.has(g) || pooledBytes + g.byteLength > POOL_CAP_BYTES) return;
  let list = pool.get(g.length);
  if (!list) pool.set(g.length, (list = []));
  list.push(g);
  pooledBytes += g.byteLength;
}

/**
 * Drops t's gradient like `t.grad = null`, recycling its buffer for the next gradBuffer() of that
 * size (an optimizer's zeroGrad: the next step's weight gradients reuse the memory instead of
 * growing the heap, which V8 answers with a collection every step). Nothing may keep the old array.
 */
export function releaseGrad(t: Tensor): void {
  if (t.grad) recycle(t.grad.data);
  t.grad = null;
}

/**
 * Attaches the backward rule to `out` when recording is on and some input requires a gradient.
 * Ops call this last: `return record(out, "matmul", [a, b], (g, needs) => [...])`.
 */
export function record(out: Tensor, name: string, inputs: readonly Tensor[],
  backward: (gradOutput: Float32Array, needs: readonly boolean[], into?: readonly (Float32Array | null)[]) =>
    (Float32Array | null)[], rowwise?: RowwiseGrad): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.gradFn = (rowwise ? { name, inputs, backward, rowwise } : { name, inputs, backward }) satisfies GradFn;
  }
  return out;
}

/**
 * The existing `.grad` buffers of the leaf inputs that need a gradient, which an op may accumulate
 * into directly. A leaf used twice by one op gets none (both contributions must be added).
 */
function leafBuffers(fn: GradFn, needs: readonly boolean[]): (Float32Array | null)[] {
  return fn.inputs.map((x, i) => (needs[i] && !x.gradFn && x.grad && fn.inputs.indexOf(x) === fn.inputs.lastIndexOf(x)
    ? x.grad.data : null));
}

/** A copy of g; under a device backend it is made on the device (a host copy would read g back). */
export function copyOf(g: Float32Array): Float32Array {
  if (!deviceArrays()) return g.slice();
  const c = allocFloat32(g.length);
  getBackend().axpby(1, g, 0, c);
  return c;
}

/** Tensors reachable from roots through gradFns, outputs before inputs. */
function reverseTopological(roots: readonly Tensor[]): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative DFS so that very deep graphs (fine-grained pipelines, long sequences) cannot overflow.
  const stack: [Tensor, number][] = [];
  for (const r of roots) {
    if (visited.has(r)) continue;
    visited.add(r);
    stack.push([r, 0]);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const inputs = top[0].gradFn?.inputs ?? [];
      if (top[1] < inputs.length) {
        const child = inputs[top[1]++];
        if (child.requiresGrad && !visited.has(child)) { visited.add(child); stack.push([child, 0]); }
      } else {
        order.push(top[0]);
        stack.pop();
      }
    }
  }
  return order.reverse();
}

export interface BackwardOptions {
  /**
   * Which leaves receive `.grad`; default: every leaf that requires grad. Gradients that lead only
   * to other leaves are not computed at all (a GradFn sees needs[i] = false).
   */
  leaves?: readonly Tensor[];
  /**
   * Leaves whose gradients are computed later (zero-bubble's W): backward() skips their work and
   * returns a closure that computes exactly those gradients from the saved output gradients.
   * They must not also be in `leaves`.
   */
  defer?: readonly Tensor[];
}

/** Computes the deferred leaf gradients of one backward() call (call at most once). */
export type DeferredGrads = () => void;

/** What a DeferredGrads closure still has to do: ops with their saved output gradients. */
interface DeferredWork {
  readonly later: [GradFn, Float32Array][];
  readonly leaves: ReadonlySet<Tensor>;
  done: boolean;
}
const deferredWork = new WeakMap<DeferredGrads, DeferredWork>();
/** One op's deferred work: the op, its saved output gradient, the leaves deferred with it. */
type DeferredItem = readonly [GradFn, Float32Array, ReadonlySet<Tensor>];

/**
 * Back-propagates from roots. With one scalar root the gradient defaults to 1. Leaf gradients
 * accumulate across calls (like PyTorch) until cleared.
 */
export function backward(roots: Tensor | readonly Tensor[], grads?: readonly (Tensor | Float32Array | null)[],
  options: BackwardOptions = {}): DeferredGrads {
  const rootList = Array.isArray(roots) ? (roots as readonly Tensor[]) : [roots as Tensor];
  const pending = new Map<Tensor, Float32Array>();
  const be = getBackend();
  // Ops may hand back their output gradient itself (add, reshape); an array gets one owner so that
  // accumulating into it later never changes a gradient held elsewhere.
  const owned = new WeakSet<Float32Array>();
  const own = (g: Float32Array): Float32Array => {
    const mine = owned.has(g) ? copyOf(g) : g;
    owned.add(mine);
    return mine;
  };
  /** Returns true when g was added into an existing pending gradient (so g itself is not kept). */
  const add = (t: Tensor, g: Float32Array): boolean => {
    if (g.length !== t.size) {
      throw new Error(`backward: gradient of ${g.length} elements for tensor of shape ${fmt(t.shape)}` +
        (t.gradFn ? ` (from ${t.gradFn.name})` : ""));
    }
    const prev = pending.get(t);
    if (prev) be.axpby(1, g, 1, prev); else pending.set(t, own(g));
    return prev !== undefined;
  };
  rootList.forEach((r, i) => {
    const g = grads?.[i] ?? null;
    if (!r.requiresGrad) throw new Error(`backward: root ${i} ${r} does not require grad`);
    if (g === null) {
      if (r.size !== 1) throw new Error(`backward: root ${i} has shape ${fmt(r.shape)}; a gradient is needed for non-scalar roots`);
      add(r, new Float32Array([1]));
    } else if (g instanceof Tensor) {
      if (!sameShape(g.shape, r.shape)) throw new Error(`backward: gradient shape ${fmt(g.shape)} does not match root shape ${fmt(r.shape)}`);
      add(r, copyOf(g.data));
    } else {
      add(r, copyOf(g));
    }
  });

  const order = reverseTopological(rootList);
  // Which tensors lead to a wanted leaf: only those gradients are computed.
  const deferred = new Set(options.defer ?? []);
  const wanted = options.leaves ? new Set(options.leaves) : null;
  const useful = new Set<Tensor>();
  for (let i = order.length - 1; i >= 0; i--) {
    const t = order[i];
    if (!t.gradFn) {
      if (!deferred.has(t) && (wanted ? wanted.has(t) : t.requiresGrad)) useful.add(t);
      continue;
    }
    // An op that consumes a deferred leaf needs its output gradient (saved for later) as well.
    if (t.gradFn.inputs.some((x) => useful.has(x) || deferred.has(x))) useful.add(t);
  }
  // Output gradients of the ops that feed a deferred leaf directly, kept for the later pass.
  const later: [GradFn, Float32Array][] = [];
  // A leaf taking g over as its .grad must own it (g may be passed through to others).
  const accumulateLeaf = (t: Tensor, g: Float32Array): void => accumulateInto(t, t.grad ? g : own(g));

  for (const t of order) {
    const g = pending.get(t);
    if (!g) continue;
    pending.delete(t);
    const fn = t.gradFn;
    if (!fn) {
      if (useful.has(t)) {
        // g was t's alone (pending entries never share arrays) and t is done with it: hand it to
        // .grad without a copy, or recycle it once added into an existing .grad.
        owned.delete(g);
        const had = t.grad !== null;
        accumulateLeaf(t, g);
        if (had) recycle(g);
      }
      continue;
    }
    const keep = deferred.size > 0 && fn.inputs.some((x) => deferred.has(x));
    if (keep) later.push([fn, g]);
    const needs = fn.inputs.map((x) => useful.has(x));
    if (!needs.some(Boolean)) continue;
    const into = leafBuffers(fn, needs);
    const inGrads = fn.backward(g, needs, into);
    // t is done with g: its first pass-through (reshape, add) may take it over without a copy.
    if (!keep) owned.delete(g);
    let passed = false;
    fn.inputs.forEach((x, i) => {
      const gi = inGrads[i];
      if (gi && sameMemory(gi, g)) passed = true;
      if (gi && needs[i] && gi !== into[i] && add(x, gi)) {
        // A fresh pool buffer this op returned for this input only, now summed into another: done.
        if (!sameMemory(gi, g) && inGrads.indexOf(gi) === i && inGrads.lastIndexOf(gi) === i) recycle(gi);
      }
    });
    if (!keep && !passed) recycle(g);
  }

  const work: DeferredWork = { later, leaves: deferred, done: false };
  const run: DeferredGrads = () => computeDeferred([run]);
  deferredWork.set(run, work);
  return run;
}

/**
 * Computes the deferred gradients of several backward() calls in one pass (each at most once).
 * Row-wise ops on the same weight (every micro-batch's linear of one layer) are stacked into one
 * call over all their rows: one large product instead of many thin ones, with the same sum.
 * Stacking follows the list's order, so the result depends only on the list, never on timing.
 */
export function computeDeferred(list: readonly DeferredGrads[]): void {
  const items: DeferredItem[] = [];
  for (const d of list) {
    const w = deferredWork.get(d);
    if (!w) throw new Error("computeDeferred: not a closure returned by backward()");
    if (w.done) throw new Error("backward: deferred gradients were already computed");
    w.done = true;
    for (const [fn, g] of w.later) items.push([fn, g, w.leaves]);
    w.later.length = 0;
  }
  // Groups of stackable items, in order of first appearance; anything else is a group of one.
  const groups: DeferredItem[][] = [];
  const byKey = new Map<object, DeferredItem[]>();
  for (const item of items) {
    const rw = item[0].rowwise;
    const group = rw ? byKey.get(rw.key) : undefined;
    if (group && stackable(group[0], item)) { group.push(item); continue; }
    groups.push([item]);
    if (rw && !group) byKey.set(rw.key, groups[groups.length - 1]);
  }
  for (const group of groups) {
    const [fn, g0, leaves] = group[0];
    const needs = fn.inputs.map((x) => leaves.has(x));
    const into = leafBuffers(fn, needs);
    let grads: (Float32Array | null)[];
    if (group.length === 1) {
      grads = fn.backward(g0, needs, into);
    } else {
      const gCat = stackRows(group.map((item) => item[1]));
      const saved = stackRows(group.map((item) => item[0].rowwise!.saved));
      const rows = group.reduce((n, [f]) => n + f.rowwise!.rows, 0);
      grads = fn.rowwise!.backward(gCat, saved, rows, needs, into);
      if (!grads.includes(gCat)) recycle(gCat);
      if (!grads.includes(saved)) recycle(saved);
    }
    fn.inputs.forEach((x, i) => {
      const gi = grads[i];
      if (gi && needs[i] && gi !== into[i]) accumulateInto(x, gi);
    });
  }
}

/** Two row-wise ops can be stacked when they compute the same leaves' gradients by the same rule. */
function stackable([a, ga, aLeaves]: DeferredItem, [b, gb, bLeaves]: DeferredItem): boolean {
  const ra = a.rowwise!, rb = b.rowwise!;
  // Same row sizes (e.g. the same image size for a convolution), so rows concatenate.
  const sameRows = ga.length * rb.rows === gb.length * ra.rows && ra.saved.length * rb.rows === rb.saved.length * ra.rows;
  // The per-row operand's own gradient is per row, not a sum over rows: never stacked.
  return sameRows && !aLeaves.has(a.inputs[0]) && !bLeaves.has(b.inputs[0]) && a.name === b.name && a.inputs.length === b.inputs.length &&
    a.inputs.every((x, i) => aLeaves.has(x) === bLeaves.has(b.inputs[i]) && (!aLeaves.has(x) || x === b.inputs[i]));
}

/** The arrays concatenated into one (pooled) buffer. */
function stackRows(parts: readonly Float32Array[]): Float32Array {
  const out = gradBuffer(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** Adds g into leaf t's .grad (taking g over when t has none). */
function accumulateInto(t: Tensor, g: Float32Array): void {
  if (t.grad) getBackend().axpby(1, g, 1, t.grad.data);
  else t.grad = new Tensor(g, t.shape);
}
