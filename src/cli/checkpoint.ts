// `pipewright checkpoint merge`: a checkpoint saved in parts (one file per MPI rank and a manifest,
// src/checkpoint/parts.ts) as one safetensors file, for tools that read plain safetensors (e.g.
// safetensors.torch.load_file). pipewright itself, scripts/check_checkpoint_torch.py and
// scripts/pipewright_checkpoint.py read parts directly; this is for everything else.
import { resolve } from "node:path";
import { command, type CommandSpec, runSubcommand, type Subcommand, UsageError } from "./args.js";
import { loadCheckpoint, saveCheckpoint, MANIFEST_FORMAT } from "../checkpoint/index.js";

const checkpointMergeCommand = {
  name: "checkpoint merge",
  summary: "Writes a checkpoint in parts (a manifest and one part per MPI rank, as `train --executor processes` saves) as one " +
    "safetensors file with the same tensors and metadata, atomically. --out may be the checkpoint itself: the file then " +
    "replaces the manifest and the parts are removed.",
  flags: {
    checkpoint: { type: "string", meta: "FILE", help: "the checkpoint (its manifest) to merge" },
    out: { type: "string", meta: "FILE", help: "the single file to write" },
  },
  examples: ["pipewright checkpoint merge --checkpoint ck.safetensors --out ck-merged.safetensors"],
} as const satisfies CommandSpec;

const runMerge = command(checkpointMergeCommand, (f) => {
  const from = f.checkpoint, to = f.out;
  if (!from || !to) throw new UsageError("pipewright checkpoint merge: --checkpoint FILE and --out FILE are required");
  const ck = loadCheckpoint(from); // every part checked
  const parts = ck.metadata.format === MANIFEST_FORMAT ? (JSON.parse(ck.metadata.parts) as unknown[]).length : 0;
  saveCheckpoint(to, { model: ck.model, optimizer: ck.optimizer, step: ck.step, epoch: ck.epoch, modelSpec: ck.modelSpec,
    extra: ck.extra, extraTensors: ck.extraTensors });
  process.stdout.write(`${resolve(to)}: ${ck.model.size} model tensor(s) from ${parts ? `${parts} part(s)` : "one file (already a single file)"}\n`);
  return 0;
});

const SUBCOMMANDS: Record<string, Subcommand> = {
  merge: { summary: "write a checkpoint saved in parts (one per MPI rank) as one safetensors file", run: runMerge },
};

export const runCheckpoint = (argv: string[]): Promise<number> => runSubcommand("pipewright checkpoint", "action", SUBCOMMANDS, argv);
