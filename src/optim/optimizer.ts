// Shared optimizer machinery: parameter groups with their own hyperparameters, per-parameter state
// keyed by parameter name (so checkpoints can store it), LR schedules applied per group.
import { Tensor } from "../tensor/tensor.js";
import { releaseGrad } from "../autograd/engine.js";
import { fmt, sameShape } from "../tensor/shape.js";
import type { LrSchedule } from "./schedule.js";

export type NamedParams = readonly (readonly [string, Tensor])[];
/** A group: its parameters plus overrides of the optimizer's defaults (e.g. its own lr). */
export type ParamGroupInput<H> = { params: readonly Tensor[] | NamedParams } & Partial<H>;
/** Plain tensors (named "0", "1", … in order), named pairs (module.namedParameters()), or groups. */
export type ParamsInput<H> = readonly Tensor[] | NamedParams | readonly ParamGroupInput<H>[];

export interface ParamGroup<H> {
  params: [string, Tensor][];
  hyper: H;
  /** The group's lr before any schedule; schedules multiply it. */
  baseLr: number;
}

/**
 * Serializable optimizer state. `tensors` maps "<param name>.<buffer>" (e.g. "layers.0.weight.exp_avg")
 * to a copy of the buffer; everything else is plain JSON.
 */
export interface OptimizerState {
  kind: string;
  groups: { hyper: Record<string, number | boolean | number[]>; baseLr: number; params: string[] }[];
  steps: Record<string, number>;
  tensors: Map<string, Tensor>;
}

function isNamed(x: readonly Tensor[] | NamedParams): x is NamedParams {
  return x.length > 0 && Array.isArray(x[0]);
}

function isGroupList<H>(x: ParamsInput<H>): x is readonly ParamGroupInput<H>[] {
  return x.length > 0 && !(x[0] instanceof Tensor) && !Array.isArray(x[0]);
}

export abstract class Optimizer<H extends { lr: number }, S extends { step: number }> {
  abstract readonly kind: string;
  readonly groups: ParamGroup<H>[] = [];
  protected readonly state = new Map<Tensor, S>();
  private readonly byName = new Map<string, Tensor>();

  protected constructor(params: ParamsInput<H>, defaults: H) {
    const groupInputs: ParamGroupInput<H>[] = isGroupList(params)
      ? [...params] : [{ params } as ParamGroupInput<H>];
    if (groupInputs.length === 0) throw new Error("optimizer got an empty parameter list");
    let index = 0;
    const seen = new Set<Tensor>();
    for (const g of groupInputs) {
      const { params: ps, ...overrides } = g;
      for (const k of Object.keys(overrides)) {
        if (!(k in defaults)) throw new Error(`parameter group has unknown option '${k}'; valid: ${Object.keys(defaults).join(", ")}`);
      }
      const named: [string, Tensor][] = isNamed(ps) ? ps.map(([n, t]) => [n, t]) : (ps as readonly Tensor[]).map((t) => [String(index++), t]);
      for (const [n, t] of named) {
        if (!(t instanceof Tensor)) throw new Error(`optimizer parameter '${n}' is not a Tensor`);
        if (seen.has(t)) throw new Error(`parameter '${n}' appears in more than one place in the optimizer's parameter list`);
        if (this.byName.has(n)) throw new Error(`two optimizer parameters share the name '${n}'`);
        seen.add(t);
        this.byName.set(n, t);
      }
      const hyper = { ...defaults, ...overrides } as H;
      this.validate(hyper);
      this.groups.push({ params: named, hyper, baseLr: hyper.lr });
    }
  }

  /** Throws naming the bad hyperparameter. */
  protected abstract validate(h: H): void;
  /** Updates one parameter in place from its gradient. */
  protected abstract update(w: Tensor, g: Tensor, h: H, state: S | undefined): S;
  /** State buffers of one parameter, by buffer name. */
  protected abstract buffersOf(s: S): Record<string, Float32Array | null>;
  /** Rebuilds state from a step count and buffers (validated to the parameter's size). */
  protected abstract restore(step: number, buffers: Record<string, Float32Array>, size: number, name: string): S;

  /** One update of every parameter that has a gradient (others are skipped, as in torch). */
  step(): void {
    for (const g of this.groups) {
      for (const [name, p] of g.params) {
        if (!p.grad) continue;
        if (!sameShape(p.grad.shape, p.shape)) throw new Error(`gradient of '${name}' has shape ${fmt(p.grad.shape)}, parameter ${fmt(p.shape)}`);
        this.state.set(p, this.update(p, p.grad, g.hyper, this.state.get(p)));
      }
    }
  }

  zeroGrad(): void {
    for (const g of this.groups) for (const [, p] of g.params) releaseGrad(p);
  }

  /** Sets every group's lr to its base lr times `factor`. */
  setLrFactor(factor: number): void {
    if (!Number.isFinite(factor) || factor < 0) throw new Error(`lr factor must be a finite number >= 0, got ${factor}`);
    for (const g of this.groups) g.hyper.lr = g.baseLr * factor;
  }

  /** Sets every group's lr from a schedule at the given (0-based) step. */
  applySchedule(schedule: LrSchedule, step: number): void { this.setLrFactor(schedule(step)); }

  /** Names of all parameters, in group order. */
  paramNames(): string[] { return this.groups.flatMap((g) => g.params.map(([n]) => n)); }

  /** Bytes of the state buffers, counted without copying them (stateDict copies). */
  stateBytes(): number {
    let n = 0;
    for (const s of this.state.values()) for (const data of Object.values(this.buffersOf(s))) n += data?.byteLength ?? 0;
    return n;
  }

  stateDict(): OptimizerState {
    const tensors = new Map<string, Tensor>();
    const steps: Record<string, number> = {};
    for (const g of this.groups) {
      for (const [name, p] of g.params) {
        const s = this.state.get(p);
        if (!s) continue;
        steps[name] = s.step;
        for (const [b, data] of Object.entries(this.buffersOf(s))) {
          if (data) tensors.set(`${name}.${b}`, new Tensor(data.slice(), p.shape));
        }
      }
    }
    return {
      kind: this.kind,
      // A JSON round trip, not structuredClone: the snapshot's hyperparameters are exactly what a saved and reloaded checkpoint holds (an undefined option dropped).
      groups: this.groups.map((g) => ({ hyper: JSON.parse(JSON.stringify(g.hyper)) as Record<string, number | boolean | number[]>, baseLr: g.baseLr, params: g.params.map(([n]) => n) })),
      steps,
      tensors,
    };
  }

  /** Restores hyperparameters and per-parameter state; errors name every mismatch. */
  loadStateDict(sd: OptimizerState): void {
    if (sd.kind !== this.kind) throw new Error(`optimizer state is for '${sd.kind}', this optimizer is '${this.kind}'`);
    if (sd.groups.length !== this.groups.length) {
      throw new Error(`optimizer state has ${sd.groups.length} parameter groups, this optimizer has ${this.groups.length}`);
    }
    const mine = this.paramNames();
    const theirs = sd.groups.flatMap((g) => g.params);
    const missing = mine.filter((n) => !theirs.includes(n));
    const unexpected = theirs.filter((n) => !mine.includes(n));
    if (missing.length || unexpected.length) {
      throw new Error(`optimizer state does not match the parameters: missing ${missing.join(", ") || "none"}; unexpected ${unexpected.join(", ") || "none"}`);
    }
    const buffers = new Map<string, Record<string, Float32Array>>();
    for (const [k, t] of sd.tensors) {
      const dot = k.lastIndexOf(".");
      const name = k.slice(0, dot);
      const p = dot > 0 ? this.byName.get(name) : undefined;
      if (!p) throw new Error(`optimizer state has buffer '${k}' for no known parameter`);
      if (t.size !== p.size) throw new Error(`optimizer buffer '${k}' has shape ${fmt(t.shape)}, parameter '${name}' is ${fmt(p.shape)}`);
      const rec = buffers.get(name) ?? {};
      rec[k.slice(dot + 1)] = t.data.slice();
      buffers.set(name, rec);
    }
    const restored = new Map<Tensor, S>();
    for (const [name, step] of Object.entries(sd.steps)) {
      const p = this.byName.get(name);
      if (!p) throw new Error(`optimizer state has a step for unknown parameter '${name}'`);
      restored.set(p, this.restore(step, buffers.get(name) ?? {}, p.size, name));
    }
    sd.groups.forEach((g, i) => {
      const hyper = { ...this.groups[i].hyper, ...g.hyper } as H;
      this.validate(hyper);
      this.groups[i].hyper = hyper;
      this.groups[i].baseLr = g.baseLr;
    });
    this.state.clear();
    for (const [p, s] of restored) this.state.set(p, s);
  }
}
