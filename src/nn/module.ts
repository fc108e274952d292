// Module: a tree of layers owning named parameters and buffers, with PyTorch's state-dict naming
// ("layers.0.weight") so checkpoints and fixtures line up with torch.nn modules one-to-one.
import { Tensor } from "../tensor/tensor.js";
import { fmt, sameShape } from "../tensor/shape.js";

export abstract class Module {
  training = true;
  // Insertion order is registration order, which defines state-dict order (as in PyTorch).
  private readonly params = new Map<string, Tensor>();
  private readonly bufs = new Map<string, Tensor>();
  private readonly kids = new Map<string, Module>();

  abstract forward(x: Tensor): Tensor;

  /** Registers a trainable tensor under `name`; it is marked requiresGrad. */
  protected registerParameter(name: string, t: Tensor): Tensor {
    this.checkFreeName(name);
    t.requiresGrad = true;
    t.name = name;
    this.params.set(name, t);
    return t;
  }

  /** Registers a non-trainable state tensor (e.g. BatchNorm running statistics). */
  protected registerBuffer(name: string, t: Tensor): Tensor {
    this.checkFreeName(name);
    t.requiresGrad = false;
    t.name = name;
    this.bufs.set(name, t);
    return t;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    this.checkFreeName(name);
    this.kids.set(name, m);
    return m;
  }

  private checkFreeName(name: string): void {
    if (name === "" || name.includes(".")) throw new Error(`invalid member name '${name}': must be non-empty without '.'`);
    if (this.params.has(name) || this.bufs.has(name) || this.kids.has(name)) {
      throw new Error(`${this.constructor.name} already has a member named '${name}'`);
    }
  }

  children(): Module[] { return [...this.kids.values()]; }

  namedChildren(): [string, Module][] { return [...this.kids.entries()]; }

  /** This module and all descendants with their dotted paths ("" for this one), depth first. */
  namedModules(prefix = ""): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, m] of this.kids) out.push(...m.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  /** Parameters with PyTorch names: own ones first, then each child's in registration order. */
  namedParameters(prefix = ""): [string, Tensor][] { return this.collect(prefix, (m) => m.params); }

  parameters(): Tensor[] { return this.namedParameters().map(([, t]) => t); }

  /** Buffers (e.g. BatchNorm running stats), named and ordered like namedParameters. */
  namedBuffers(prefix = ""): [string, Tensor][] { return this.collect(prefix, (m) => m.bufs); }

  private collect(prefix: string, own: (m: Module) => ReadonlyMap<string, Tensor>): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of own(this)) out.push([join(prefix, n), t]);
    for (const [n, m] of this.kids) out.push(...m.collect(join(prefix, n), own));
    return out;
  }

  buffers(): Tensor[] { return this.namedBuffers().map(([, t]) => t); }

  /**
   * Parameters and buffers by name, in PyTorch's order (per module: parameters, then buffers, then
   * children). The tensors are the live ones, not copies: clone them to snapshot.
   */
  stateDict(prefix = ""): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [n, t] of this.params) out.set(join(prefix, n), t);
    for (const [n, t] of this.bufs) out.set(join(prefix, n), t);
    for (const [n, m] of this.kids) for (const [k, t] of m.stateDict(join(prefix, n))) out.set(k, t);
    return out;
  }

  /**
   * Copies values into this module's tensors. With strict, every key must match one of ours and
   * every one of ours must be present; shapes must always match. Errors list all offending keys.
   */
  loadStateDict(state: ReadonlyMap<string, Tensor> | Record<string, Tensor>, strict = true): void {
    const given = state instanceof Map ? state : new Map(Object.entries(state));
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !given.has(k));
    const unexpected = [...given.keys()].filter((k) => !own.has(k));
    const mismatched: string[] = [];
    for (const [k, t] of given) {
      const mine = own.get(k);
      if (mine && !sameShape(mine.shape, t.shape)) mismatched.push(`${k}: checkpoint ${fmt(t.shape)} vs model ${fmt(mine.shape)}`);
    }
    const problems: string[] = [];
    if (strict && missing.length) problems.push(`missing keys: ${missing.join(", ")}`);
    if (strict && unexpected.length) problems.push(`unexpected keys: ${unexpected.join(", ")}`);
    if (mismatched.length) problems.push(`shape mismatch: ${mismatched.join("; ")}`);
    if (problems.length) throw new Error(`loadStateDict into ${this.constructor.name}: ${problems.join(". ")}`);
    for (const [k, t] of given) own.get(k)?.data.set(t.data);
  }

  /** Sets training mode here and in every descendant (affects Dropout and BatchNorm). */
  train(on = true): this {
    this.training = on;
    for (const m of this.kids.values()) m.train(on);
    return this;
  }

  eval(): this { return this.train(false); }

  /** Clears every parameter's gradient (sets it to null, like PyTorch's set_to_none=True). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /** Number of trainable scalars. */
  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.size, 0);
  }
}

function join(prefix: string, name: string): string { return prefix ? `${prefix}.${name}` : name; }

/** Applies its children in order; they are named "0", "1", … like torch.nn.Sequential. */
export class Sequential extends Module {
  readonly layers: readonly Module[];

  constructor(layers: readonly Module[]) {
    super();
    this.layers = [...layers];
    this.layers.forEach((m, i) => this.registerModule(String(i), m));
  }

  get length(): number { return this.layers.length; }

  at(i: number): Module {
    const m = this.layers[i < 0 ? this.layers.length + i : i];
    if (!m) throw new Error(`Sequential index ${i} out of range for ${this.layers.length} layers`);
    return m;
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this.layers) y = m.forward(y);
    return y;
  }
}
