// Checkpoints of a processes run, one file per rank (src/checkpoint/parts.ts): every rank of the
// first replica writes its own stages' tensors, optimizer state and asynchronous buffers into a new
// part (atomically), the ranks confirm in one small collective, and rank 0 writes the manifest last,
// which makes the parts the checkpoint and then removes older saves' parts. No rank holds more than
// its own stages for the save (a copy of its optimizer share), and the ranks write at the same time.
//
// Why this is the processes default (train and createPipeline), not gathering to rank 0
// (`train --save-layout file`): gathering needs the whole model and optimizer state in one process
// (today in every process: the gather is an all-gather), which defeats a pipeline larger than one
// machine, and it serialises the whole write on rank 0; parts are written by every rank at once, with
// no rank holding more than its own share (`pipewright bench checkpoint` compares the two layouts).
import { mergeStates, type OptimizerState } from "../../optim/index.js";
import { EXTRA_PREFIX, OPTIM_PREFIX, newPartName, saveManifest, toJson, writePart, type Json, type PartInfo } from "../../checkpoint/index.js";
import { ASYNC_TENSOR_PREFIX, type AsyncStageMeta } from "./async-state.js";
import type { LocalState, LocalStateSource } from "./local-state.js";
import { Tensor } from "../../tensor/tensor.js";
import { testSeam } from "../../testing/seam.js";

export interface PartedSaveInput {
  step: number;
  epoch: number;
  modelSpec?: object;
  /** The trainer's own JSON (config, history, ...); the asynchronous state's is added here. */
  extra: { [key: string]: Json };
  /** The model's parameter order (the optimizer state's single group lists them so). */
  paramOrder: readonly string[];
}

/** What a rank tells rank 0 about its part (null: it wrote none, a later replica). */
type PartReport = null | { error: string } | {
  part: PartInfo;
  /** Its virtual stages' model tensor names, for the state-dict order. */
  stages: { stage: number; names: string[] }[];
  optimizer: Omit<OptimizerState, "tensors">[];
  async: AsyncStageMeta[] | null;
};

let partedSaves = 0;

/**
 * Collective over every rank of the run: saves the checkpoint at `path` in parts. Returns once the
 * manifest is in place; a rank that cannot write its part makes every rank throw, naming it, and the
 * previous checkpoint at `path` stays as it was.
 */
export async function savePartedCheckpoint(path: string, ex: LocalStateSource, ck: PartedSaveInput): Promise<void> {
  // The test seam's crash points of this process's `save`-th parted save (nothing in production).
  const save = ++partedSaves, seam = testSeam.crashSave;
  const crash = (rank: number, point: "mid-part" | "after-part" | "before-manifest"): void => seam?.(save, rank, point);
  const local = ex.localState();
  let report: PartReport = null;
  if (local.writes) {
    try {
      const file = newPartName(path, ck.step, local.rank);
      const part = writePart(path, file, partTensors(local), local.rank, { midWrite: () => crash(local.rank, "mid-part") });
      crash(local.rank, "after-part");
      report = {
        part, stages: local.stages.map((s) => ({ stage: s.stage, names: [...s.state.keys()] })),
        optimizer: local.optimizer.map(({ tensors: _t, ...json }) => json), async: local.async?.stages ?? null,
      };
    } catch (e) {
      report = { error: (e as Error).message };
    }
  }
  // Every part is on disk once every rank is past this (small: names and checksums only).
  const reports = await ex.gatherAll(report, "the checkpoint-part confirmations");
  const failed = reports.findIndex((r) => r !== null && "error" in r);
  if (failed >= 0) {
    throw new Error(`checkpoint ${path} not saved: rank ${failed} could not write its part (${(reports[failed] as { error: string }).error}); the previous checkpoint there is untouched`);
  }
  if (local.rank === 0) {
    crash(0, "before-manifest");
    writeManifest(path, reports.filter((r): r is Exclude<PartReport, null | { error: string }> => r !== null), ck);
  }
  await ex.barrier("the checkpoint manifest");
}

/** A part's tensors: the model's under state-dict names, then "optim.*", then "extra.async.*". */
function partTensors(local: LocalState): [string, Tensor][] {
  const out: [string, Tensor][] = [];
  for (const s of local.stages) for (const [k, t] of s.state) out.push([k, t]);
  for (const o of local.optimizer) for (const [k, t] of o.tensors) out.push([OPTIM_PREFIX + k, t]);
  for (const [k, data] of Object.entries(local.async?.buffers ?? {})) out.push([EXTRA_PREFIX + ASYNC_TENSOR_PREFIX + k, new Tensor(data, [data.length])]);
  return out;
}

/** Rank 0: the manifest from every part's report, with the same metadata as a single file. */
function writeManifest(path: string, reports: Exclude<PartReport, null | { error: string }>[], ck: PartedSaveInput): void {
  const order = reports.flatMap((r) => r.stages).sort((a, b) => a.stage - b.stage).flatMap((s) => s.names);
  const opt = reports.flatMap((r) => r.optimizer);
  // The single-device shape, as a gathered save writes it (mergeStates over the stages in rank order).
  const merged = opt.length ? mergeStates(opt.map((o) => ({ ...o, tensors: new Map() })), ck.paramOrder) : undefined;
  const optimizer = merged ? (({ tensors: _t, ...json }) => json)(merged) : undefined;
  const asyncParts = reports.filter((r) => r.async !== null);
  const extra = asyncParts.length ? { ...ck.extra, async: { stages: asyncParts.flatMap((r) => r.async!).sort((a, b) => a.stage - b.stage) } } : ck.extra;
  saveManifest(path, {
    parts: reports.map((r) => r.part), order, step: ck.step, epoch: ck.epoch, optimizer, modelSpec: ck.modelSpec,
    extra: toJson(extra),
  });
}
