// `pipewright bench checkpoint` (under `pipewright launch -n N` or mpirun): the two checkpoint layouts
// of a processes run on the same trained pipeline (an MLP cut into N stages, AdamW so the optimizer
// state is twice the weights): "file" gathers weights and optimizer state (as the trainer's
// `--save-layout file` does: an all-gather over the pipeline) and rank 0 writes one file; "parts" has
// every rank write its own part and rank 0 the manifest (src/pipeline/runtime/parted-save.ts). Per layout:
// the median save over --saves (wall time on rank 0 between barriers; for file also the gather's
// part), each rank's peak RSS so far, and the time to load the result. Parts run first: a process's
// peak RSS only grows, so file's figure is its own only when it is the larger (run `--layout file`
// alone to be sure). Every rank builds the whole model once at the start, in both layouts' RSS.
import { mkdtempSync, rmSync, statSync, readdirSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { command, type CommandSpec, UsageError } from "./args.js";
import { emit } from "./output.js";
import { cpuLabel, getBackend, machineCpu } from "../backend/index.js";
import { loadCheckpoint, saveCheckpoint } from "../checkpoint/index.js";
import { medianUpper, roundTo } from "../util/stats.js";
import { splitBatch } from "../data/microbatch.js";
import { createModel } from "../nn/models/index.js";
import type { ModelSpec } from "../nn/models/spec.js";
import { balanceByCost } from "../pipeline/partition.js";
import { ProcessesExecutor, startGroups } from "../pipeline/runtime/processes.js";
import type { PipelineSetup } from "../pipeline/runtime/setup.js";
import { generateSchedule } from "../pipeline/schedule/index.js";
import { Rng } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { savePartedCheckpoint } from "../pipeline/runtime/parted-save.js";
import { launchEnv } from "../transport/mpi/env.js";

const LAYOUTS = ["parts", "file"] as const;
type Layout = (typeof LAYOUTS)[number];

const benchCheckpointCommand = {
  name: "bench checkpoint",
  summary: "Under `pipewright launch -n N -- bench checkpoint`: saves of an N-stage processes pipeline (an MLP of --layers x --width, AdamW) " +
    "as one file gathered to rank 0 against one part per rank plus a manifest. Rank 0 prints per layout the median save time " +
    "(file: also the gather's), each rank's peak RSS, the files' size, the load time and the load average.",
  flags: {
    layout: { type: "string", choices: [...LAYOUTS, "both"], default: "both", help: "layouts to time (both: parts, then file)" },
    layers: { type: "int", min: 1, default: 8, meta: "L", help: "hidden layers of the MLP" },
    width: { type: "int", min: 1, default: 2048, meta: "D", help: "hidden width of the MLP" },
    saves: { type: "int", min: 1, default: 5, meta: "K", help: "saves per layout (the median is reported)" },
    dir: { type: "string", meta: "DIR", help: "directory to save into (default: a new temp directory, removed afterwards)" },
    json: { type: "bool", help: "one JSON object per layout" },
  },
  examples: ["pipewright launch -n 2 -- bench checkpoint", "pipewright launch -n 4 -- bench checkpoint --layers 8 --width 2048 --json"],
} as const satisfies CommandSpec;

const mb = (bytes: number): number => Number((bytes / 2 ** 20).toFixed(1));

export const runBenchCheckpoint = command(benchCheckpointCommand, async (f) => {
  const env = launchEnv();
  if (!env) throw new UsageError("bench checkpoint runs on 2+ MPI ranks: `pipewright launch -n 2 -- bench checkpoint` (or mpirun -n 2 pipewright bench checkpoint)");
  const N = env.size;
  const g = await startGroups(N);
  const spec: ModelSpec = { name: "mlp", input: 784, hidden: new Array<number>(f.layers).fill(f.width), classes: 10 };
  const model = createModel(spec, 0);
  const costs = model.units.map((u) => u.parameters().reduce((a, p) => a + p.size, 0) + 1);
  const setup: PipelineSetup = { model: spec, seed: 0, schedule: generateSchedule("gpipe", { stages: N, microbatches: N }), balance: balanceByCost(costs, N),
    recompute: "never", optimizer: { name: "adamw", lr: 1e-3, weightDecay: 0.01 } };
  const ex = await ProcessesExecutor.create(setup, { state: model.stateDict() });
  const order = model.namedParameters().map(([n]) => n);
  const parameters = model.numParameters();
  const rng = new Rng(0);
  const B = 4 * N;
  const parts = splitBatch({ x: Tensor.randn([B, 784], rng), y: Int32Array.from({ length: B }, () => rng.int(10)) }, N);
  await ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / B }); // AdamW state exists after a step
  const dir = f.dir ?? (g.mpi.rank === 0 ? mkdtempSync(join(tmpdir(), "pw-bench-ckpt-")) : "");
  const where = await g.world.broadcast(g.mpi.rank === 0 ? dir : undefined, 0);
  const layouts: Layout[] = f.layout === "both" ? [...LAYOUTS] : [f.layout];
  try {
    for (const layout of layouts) {
      const path = join(where, `${layout}.safetensors`);
      const row = await timeLayout(layout, path, { ex, g, order, saves: f.saves, spec });
      if (g.mpi.rank !== 0) continue;
      const out = { bench: "checkpoint", layout, ranks: N, parameters, state_mb: mb(parameters * 4 * 3), ...row,
        loadavg: loadavg().map((l) => Number(l.toFixed(2))), cpu: cpuLabel(machineCpu()), backend: getBackend().name };
      emit(f.json, out, `checkpoint ${layout.padEnd(5)} ${N} ranks, ${(parameters / 1e6).toFixed(1)}M parameters ` +
        `(${out.state_mb} MB with AdamW state), ${out.files_mb} MB on disk: save ${out.save_ms_median} ms median (${out.save_ms.join(", ")}${out.gather_ms_median !== null ? `; the gather ${out.gather_ms_median} ms` : ""}), ` +
        `peak RSS per rank ${out.peak_rss_mb.join("/")} MB, load ${out.load_ms} ms; ` +
        `load average ${out.loadavg.join(" ")}; ${out.cpu}`);
    }
  } finally {
    await ex.close();
    if (g.mpi.rank === 0 && f.dir === undefined) rmSync(where, { recursive: true, force: true });
  }
  return 0;
});

interface Ctx { ex: ProcessesExecutor; g: Awaited<ReturnType<typeof startGroups>>; order: string[]; saves: number; spec: ModelSpec }

/**
 * `saves` saves in one layout: rank 0's wall times (file: also the gather's alone, the rest being
 * rank 0 writing), each rank's peak RSS, then a load.
 */
async function timeLayout(layout: Layout, path: string, c: Ctx) {
  const times: number[] = [], gathers: number[] = [];
  for (let i = 0; i < c.saves; i++) {
    await c.g.world.barrier();
    const t0 = performance.now();
    if (layout === "parts") {
      await savePartedCheckpoint(path, c.ex, { step: i + 1, epoch: 1, modelSpec: c.spec, extra: { bench: true }, paramOrder: c.order });
    } else {
      // The trainer's --save-layout file: weights and optimizer state gathered on every rank, rank 0 writes.
      const model = await c.ex.stateDict();
      const optimizer = await c.ex.optimizerState(c.order);
      gathers.push(performance.now() - t0);
      if (c.g.mpi.rank === 0) saveCheckpoint(path, { model, optimizer, step: i + 1, epoch: 1, modelSpec: c.spec, extra: { bench: true } });
      await c.g.world.barrier();
    }
    times.push(performance.now() - t0);
  }
  const all = await c.g.world.allGather({ rss: process.resourceUsage().maxRSS * 1024 });
  let load_ms = 0, files = 0;
  if (c.g.mpi.rank === 0) {
    const t0 = performance.now();
    loadCheckpoint(path);
    load_ms = Number((performance.now() - t0).toFixed(1));
    const base = path.split("/").pop()!;
    const dir = path.slice(0, path.length - base.length);
    for (const n of readdirSync(dir)) if (n === base || n.startsWith(`${base}.part-`)) files += statSync(join(dir, n)).size;
  }
  await c.g.world.barrier();
  const medianMs = (xs: number[]): number => roundTo(medianUpper(xs), 1);
  return { save_ms_median: medianMs(times), save_ms: times.map((t) => roundTo(t, 1)), gather_ms_median: gathers.length ? medianMs(gathers) : null,
    peak_rss_mb: all.map((a) => mb(a.rss)), files_mb: mb(files), load_ms };
}
