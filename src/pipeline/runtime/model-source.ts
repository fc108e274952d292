// Where a worker (a thread, or an MPI rank) gets its model: a built-in spec + seed, or a user's ES
// module export `(args, { tensor }) => Module[] | Sequential` that every worker imports and calls
// once. The worker then loads the initial state it is given, so random initialisation in the user's
// build never has to agree across workers. `tensor` is the worker's tensor-parallel group, over
// which the user's ColumnParallelLinear / RowParallelLinear layers split (a group of one elsewhere:
// whole layers).
import { createModel, MODEL_UNIT_PREFIX } from "../../nn/models/index.js";
import { withoutInit } from "../../nn/init.js";
import type { ModelSpec } from "../../nn/models/spec.js";
import { Module, Sequential } from "../../nn/module.js";
import type { Tensor } from "../../tensor/tensor.js";
import { describe, importFunction } from "./module-import.js";
import type { SyncCollectives } from "../../transport/types.js";
import { soloCollectives } from "../../transport/solo-collectives.js";

/** Plain JSON (module arguments cross threads and processes as JSON). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export type ModelSource =
  | { kind: "builtin"; spec: ModelSpec; seed: number }
  /**
   * module: a file URL or an absolute path (users pass import.meta.url); export defaults to "default".
   * splitState false: the units are not the state dict's numbered entries, so every worker gets the whole state.
   */
  | { kind: "module"; module: string; export?: string; args?: JsonValue; splitState?: false };

/**
 * The model a pipeline cuts: an ordered list of units (Tensor -> Tensor), named in the state dict
 * `${unitPrefix}.${i}.*` ("layers.3.weight" for built-ins) or `${i}.*` when the prefix is "" (a
 * user's layer list, named like torch.nn.Sequential).
 */
export interface PipelineModel extends Module {
  readonly units: readonly Module[];
  readonly unitPrefix: string;
  /** State-dict index of unit i (default i): units cut out of one layer share its index. */
  readonly unitIndex?: readonly number[];
  /**
   * What stage 0 takes for a model input x (default x), in training or eval mode: a SplitBatch with
   * `prepare` runs it on the workers; evaluation and prediction (always model inputs) run it there too.
   */
  prepareInput?(x: Tensor, training: boolean): Tensor;
}

/** A user's layer list as a model: a Sequential whose children are the units ("0.weight", ...). */
export class UnitList extends Sequential implements PipelineModel {
  readonly unitPrefix = "";
  get units(): readonly Module[] { return this.layers; }
}

/**
 * A Module[] or a Sequential (its children become the units) as a PipelineModel; a PipelineModel
 * (e.g. a built-in Model) as it is. Anything else is an error naming what it got.
 */
export function toPipelineModel(built: unknown, where: string): PipelineModel {
  const m = built as { units?: unknown; unitPrefix?: unknown };
  if (built instanceof Module && Array.isArray(m.units) && typeof m.unitPrefix === "string") {
    return built as PipelineModel;
  }
  if (built instanceof Sequential) return new UnitList(built.layers);
  if (Array.isArray(built)) {
    const bad = built.findIndex((m) => !(m instanceof Module));
    if (bad >= 0) throw new Error(`${where}: element ${bad} of the layer list is ${describe(built[bad])}, not a Module (nn.Linear, nn.Sequential, your own Module subclass...)`);
    if (built.length === 0) throw new Error(`${where}: the layer list is empty; a pipeline needs at least one layer per stage`);
    return new UnitList(built as Module[]);
  }
  throw new Error(`${where}: expected a Module[] or a Sequential (the units the pipeline cuts into stages), got ${describe(built)}`);
}

/**
 * The state-dict prefix a source's units are expected to have: built-ins "layers", a user's layer
 * list "" (a user's own PipelineModel may differ; a worker then gets the whole state, see worker-state.ts);
 * null where the state is not split by unit.
 */
export function expectedUnitPrefix(src: ModelSource): string | null {
  if (src.kind === "module" && src.splitState === false) return null;
  return src.kind === "builtin" ? MODEL_UNIT_PREFIX : "";
}

export interface LoadOptions {
  /**
   * false: the caller overwrites every parameter right after (a worker loading the main thread's
   * state), so a built-in model skips its random initialisation. A user's build always runs as
   * written: its own init may matter beyond the state dict.
   */
  initialise?: boolean;
  /** The tensor-parallel group a user's build splits its parallel layers over (default: a group of one). */
  tensor?: SyncCollectives;
}

/** Builds the model a source names (every worker calls this once). */
export async function loadModelSource(src: ModelSource, opts: LoadOptions = {}): Promise<PipelineModel> {
  if (typeof src !== "object" || src === null) throw new Error(`model source must be {kind: "builtin", ...} or {kind: "module", module, export?}, got ${describe(src)}`);
  if (src.kind === "builtin") return opts.initialise === false ? withoutInit(() => createModel(src.spec, src.seed)) : createModel(src.spec, src.seed);
  if (src.kind !== "module") throw new Error(`model source kind '${String((src as { kind: unknown }).kind)}' is not valid; valid: builtin, module`);
  const name = src.export ?? "default";
  const build = await importFunction(src.module, name, "model source", "(args) => Module[] | Sequential");
  let built: unknown;
  try {
    built = await build(src.args, { tensor: opts.tensor ?? soloCollectives() });
  } catch (e) {
    throw new Error(`model source: export '${name}' of module '${src.module}' threw: ${(e as Error).message ?? String(e)}`, { cause: e });
  }
  return toPipelineModel(built, `model source: export '${name}' of module '${src.module}' returned`);
}
