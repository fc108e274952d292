// Which part of the model's state a pipeline worker needs: the entries of the units its stages hold
// (each unit lives on exactly one worker) and their optimizer state. The main thread sends each
// worker only its share instead of a copy of the whole model per worker.
import type { OptimizerState, PlainOptimizerState, StateEntry } from "../../optim/index.js";
import type { Schedule } from "../schedule/action.js";
import { Tensor } from "../../tensor/tensor.js";
import { hostMemory } from "../../tensor/host-arrays.js";
import type { PipelineModel } from "./model-source.js";
import type { PhysicalStage } from "./interpreter.js";
import { unitRanges } from "./setup.js";

/** One worker's initial state: `units` null = the whole model's state (loaded whole, as one model). */
export interface WorkerState {
  units: number[] | null;
  entries: StateEntry[];
  optimizerState?: PlainOptimizerState;
}

/** Unit indices of every worker: virtual stage vs = chunk * S + stage runs on stageToWorker[stage]. */
export function unitsPerWorker(balance: readonly number[], schedule: Schedule): number[][] {
  const out: number[][] = schedule.workers.map(() => []);
  unitRanges(balance).forEach(([a, b], vs) => { for (let u = a; u < b; u++) out[schedule.stageToWorker[vs % schedule.stages]].push(u); });
  return out;
}

/** The unit a state key belongs to ("layers.3.weight" under prefix "layers" -> 3), or -1 (always under null). */
export function unitOfKey(key: string, prefix: string | null): number {
  if (prefix === null) return -1;
  const head = prefix ? `${prefix}.` : "";
  if (!key.startsWith(head)) return -1;
  const m = /^(\d+)\./.exec(key.slice(head.length));
  return m ? Number(m[1]) : -1;
}

/** `entries` in model order: by unit (a worker holds interleaved chunks out of order), each unit's entries as it lists them. */
export function inUnitOrder<E extends readonly [string, ...unknown[]]>(entries: readonly E[], prefix: string | null): E[] {
  const unit = (e: E): number => unitOfKey(e[0], prefix);
  return [...entries].sort((a, b) => unit(a) - unit(b));
}

/** Optimizer state restricted to the tensors of `params` (groups and step counts are small: kept). */
function optimizerShare(full: PlainOptimizerState, params: ReadonlySet<string>): PlainOptimizerState {
  return { ...full, tensors: full.tensors.filter(([k]) => params.has(k.slice(0, k.lastIndexOf(".")))) };
}

/**
 * Each worker's share of `state` (keys under `prefix`) and of the optimizer state. If some key names
 * no unit (a model-level parameter, or a user model with another prefix), every worker gets all of it.
 */
export function shareState(state: ReadonlyMap<string, Tensor>, prefix: string | null, owners: readonly number[][],
  optimizerState?: PlainOptimizerState): WorkerState[] {
  const workerOf = new Map<number, number>();
  owners.forEach((units, w) => { for (const u of units) workerOf.set(u, w); });
  const keys = [...state.keys()];
  if (keys.some((k) => !workerOf.has(unitOfKey(k, prefix)))) {
    const entries: StateEntry[] = [...state].map(([k, t]) => [k, hostMemory(t.data), [...t.shape]]);
    return owners.map(() => ({ units: null, entries, optimizerState }));
  }
  const shares: WorkerState[] = owners.map((units) => ({ units: [...units], entries: [] }));
  for (const [k, t] of state) shares[workerOf.get(unitOfKey(k, prefix))!].entries.push([k, hostMemory(t.data), [...t.shape]]);
  if (optimizerState) for (const s of shares) s.optimizerState = optimizerShare(optimizerState, new Set(s.entries.map(([k]) => k)));
  return shares;
}

/** Loads a worker's share into its model: whole, or unit by unit (strict: each held unit gets all its keys). */
export function loadWorkerState(model: PipelineModel, share: Pick<WorkerState, "units" | "entries">): void {
  const tensors = share.entries.map(([k, data, shape]) => [k, new Tensor(data, shape)] as const);
  if (share.units === null) { model.loadStateDict(new Map(tensors)); return; }
  const perUnit = new Map(share.units.map((u) => [u, new Map<string, Tensor>()]));
  for (const [k, t] of tensors) {
    const u = unitOfKey(k, model.unitPrefix);
    const mine = perUnit.get(u);
    if (!mine) throw new Error(`worker state: '${k}' is not a key of the units this worker holds (${share.units.join(", ")}) under prefix '${model.unitPrefix}'`);
    mine.set(k.slice((model.unitPrefix ? model.unitPrefix.length + 1 : 0) + String(u).length + 1), t);
  }
  for (const [u, m] of perUnit) {
    const unit = model.units[u];
    if (!unit) throw new Error(`worker state: unit ${u} does not exist; the model has ${model.units.length} units`);
    unit.loadStateDict(m);
  }
}

/**
 * Copies `state`'s values into `stages`' parameters and buffers, named as in the full model (keys
 * of other stages are ignored). The caller has released the weights (their layout copies would be
 * stale). Throws naming a missing key or a wrong shape before anything is changed.
 */
export function loadStageState(stages: Iterable<{ readonly chunks: readonly { stateDict(): Map<string, Tensor> }[] }>, state: ReadonlyMap<string, Tensor>): void {
  const pairs: [Tensor, Tensor][] = [];
  for (const ps of stages) {
    for (const c of ps.chunks) {
      for (const [k, t] of c.stateDict()) {
        const given = state.get(k);
        if (!given) throw new Error(`loadStateDict: the state has no '${k}'`);
        if (given.shape.join(",") !== t.shape.join(",")) throw new Error(`loadStateDict: '${k}' has shape [${given.shape.join(", ")}], the model [${t.shape.join(", ")}]`);
        pairs.push([t, given]);
      }
    }
  }
  for (const [t, given] of pairs) t.data.set(given.data);
}

/** Copies of the stages' parameters and buffers, as entries named as in the full model. */
export function stageEntries(stages: Iterable<PhysicalStage>): StateEntry[] {
  return [...stages].flatMap((ps) => ps.chunks.flatMap((c) => [...c.stateDict()].map(([k, t]): StateEntry => [k, t.data.slice(), [...t.shape]])));
}

/** Entries as a state dict (the tensors share the entries' arrays). */
export const entryTensors = (entries: readonly StateEntry[]): Map<string, Tensor> => new Map(entries.map(([k, d, shape]) => [k, new Tensor(d, shape)]));

export const stageOptimizerStates = (stages: Iterable<PhysicalStage>): OptimizerState[] => [...stages].flatMap((ps) => (ps.optimizer ? [ps.optimizer.stateDict()] : []));

export function refuseLoadWithAsync(asyncRuntime: object | null): void {
  if (asyncRuntime) throw new Error("loadStateDict: not with an asynchronous method (its weight versions would mix the old weights and the new)");
}
