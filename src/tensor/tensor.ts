// A tensor is a shape plus a contiguous row-major Float32Array. Autograd fields live here as plain
// data (the tape itself is in src/autograd) so that lower layers never import the autograd engine.
import { Rng } from "./random.js";
import { checkShape, fmt, numel, resolveReshape, type Shape } from "./shape.js";
import { allocFloat32, deviceArrays } from "./host-arrays.js";

/** One recorded operation: how to turn the gradient of its output into gradients of its inputs. */
export interface GradFn {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  /**
   * Returns d(loss)/d(input) for each input, or null where `needs[i]` is false or the input gets no
   * gradient. The returned arrays are owned by the caller (the engine may keep or add into them).
   * `into[i]`, when given, is the existing gradient buffer of input i (a leaf's `.grad`): an op may
   * add its gradient there directly (saving an allocation and a pass) and return that same array.
   */
  backward(gradOutput: Float32Array, needs: readonly boolean[], into?: readonly (Float32Array | null)[]):
    (Float32Array | null)[];
  /** Set by ops whose leaf gradients are sums over rows (see RowwiseGrad). */
  readonly rowwise?: RowwiseGrad;
}

/**
 * The leaf gradients of a row-wise op (linear: dW = g^T x, db = sum of g's rows) are sums over
 * rows, so the same rule applied to the rows of several calls stacked together gives the sum of
 * their gradients: deferred weight gradients of many micro-batches can run as one large product.
 */
export interface RowwiseGrad {
  /** Calls with the same key (the weight) and the same leaf inputs can be stacked. */
  readonly key: object;
  /** Rows of this call; the output gradient and `saved` hold `rows` equal-sized rows each. */
  readonly rows: number;
  /** The per-row operand the leaf gradients read: the op's first input (linear: x). */
  readonly saved: Float32Array;
  /** GradFn.backward on explicit rows: `gradOutput` and `saved` hold `rows` rows. */
  backward(gradOutput: Float32Array, saved: Float32Array, rows: number, needs: readonly boolean[],
    into?: readonly (Float32Array | null)[]): (Float32Array | null)[];
}

/** An uninitialised Float32Array of n elements (Node's unpooled, non-zeroed allocation). */
export function emptyFloat32(n: number): Float32Array {
  if (deviceArrays()) return allocFloat32(n);
  if (n < 1024) return new Float32Array(n); // small: zeroing is free and the pool is not worth it
  const buf = Buffer.allocUnsafeSlow(n * 4);
  return new Float32Array(buf.buffer, buf.byteOffset, n);
}

export class Tensor {
  readonly data: Float32Array;
  readonly shape: readonly number[];
  requiresGrad: boolean;
  /** Accumulated gradient (leaves only), same shape; null until a backward reaches it. */
  grad: Tensor | null = null;
  /** The operation that produced this tensor, null for leaves. */
  gradFn: GradFn | null = null;
  /** Optional name, used in error messages and state dicts. */
  name?: string;

  constructor(data: Float32Array, shape: Shape, requiresGrad = false) {
    checkShape(shape);
    if (data.length !== numel(shape)) {
      throw new Error(`tensor data has ${data.length} elements but shape ${fmt(shape)} needs ${numel(shape)}`);
    }
    this.data = data;
    this.shape = Object.freeze([...shape]);
    this.requiresGrad = requiresGrad;
  }

  get size(): number { return this.data.length; }
  get rank(): number { return this.shape.length; }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.data.length !== 1) throw new Error(`item() needs a one-element tensor, got shape ${fmt(this.shape)}`);
    return this.data[0];
  }

  /** A new leaf sharing no memory and no history. */
  clone(): Tensor { return new Tensor(this.data.slice(), this.shape, false); }

  /** A leaf that shares this tensor's memory but not its history. */
  detach(): Tensor { return new Tensor(this.data, this.shape, false); }

  toArray(): number[] { return Array.from(this.data); }

  toString(): string { return `Tensor(${fmt(this.shape)}${this.gradFn ? `, grad_fn=${this.gradFn.name}` : ""})`; }

  /**
   * A tensor whose contents are undefined (not zeroed): only for outputs a kernel overwrites
   * entirely, where zeroing megabytes first would be wasted memory traffic.
   */
  static empty(shape: Shape, requiresGrad = false): Tensor {
    return new Tensor(emptyFloat32(numel(shape)), shape, requiresGrad);
  }

  static zeros(shape: Shape, requiresGrad = false): Tensor {
    return new Tensor(allocFloat32(numel(shape)), shape, requiresGrad);
  }

  static full(shape: Shape, value: number, requiresGrad = false): Tensor {
    return new Tensor(allocFloat32(numel(shape)).fill(value), shape, requiresGrad);
  }

  static ones(shape: Shape, requiresGrad = false): Tensor { return Tensor.full(shape, 1, requiresGrad); }

  static scalar(value: number, requiresGrad = false): Tensor { return Tensor.full([], value, requiresGrad); }

  /** From a flat array (shape given) or nested arrays (shape inferred). */
  static from(values: ArrayLike<number> | unknown[], shape?: Shape, requiresGrad = false): Tensor {
    if (shape) return new Tensor(Float32Array.from(values as ArrayLike<number>), shape, requiresGrad);
    const inferred: number[] = [];
    let v: unknown = values;
    while (Array.isArray(v)) { inferred.push(v.length); v = v[0]; }
    const flat = (values as unknown[]).flat(Infinity) as number[];
    return new Tensor(Float32Array.from(flat), inferred, requiresGrad);
  }

  static randn(shape: Shape, rng: Rng, std = 1, requiresGrad = false): Tensor {
    const t = Tensor.zeros(shape, requiresGrad);
    for (let i = 0; i < t.data.length; i++) t.data[i] = rng.normal() * std;
    return t;
  }

  static uniform(shape: Shape, rng: Rng, low: number, high: number, requiresGrad = false): Tensor {
    const t = Tensor.zeros(shape, requiresGrad);
    for (let i = 0; i < t.data.length; i++) t.data[i] = low + (high - low) * rng.uniform();
    return t;
  }

  /** Same data, new shape (one -1 allowed). No history: use the autograd `reshape` op for that. */
  viewAs(shape: Shape): Tensor { return new Tensor(this.data, resolveReshape(this.shape, shape), false); }
}
