// Shared machinery of `repro pipemare` and `repro pb`: train a list of rows (a method = a pipeline
// configuration plus hyper-parameters) over several seeds with the ordinary pipeline trainer, and
// report final test accuracy (mean ± sample std over seeds), the per-stage delays measured from the
// schedule IR, the per-stage peak memory of weights + optimizer state + extra weight versions, and
// the curves of every row.
import type { FlagSpecs, FlagValues } from "./args.js";
import { BACKEND_FLAG } from "./gpu-flags.js";
import { emit } from "./output.js";
import { setBackend } from "../backend/index.js";
import type { ModelSpec } from "../nn/models/spec.js";
import { InlineExecutor } from "../pipeline/runtime/inline.js";
import type { StageMemory } from "../pipeline/runtime/async-weights.js";
import { trainPipeline } from "../train/pipeline.js";
import { generateSchedule, measureDelays, stepsForSteadyState } from "../pipeline/schedule/index.js";
import { compareCurvesSvg, type RunCurves } from "../report/compare-curves-svg.js";
import { optimizerConfigOf, type ModelDefaults, type PipelineConfig } from "../train/options.js";
import { writeFileAtomic } from "../checkpoint/atomic-write.js";
import { mean, sampleStd } from "../util/stats.js";

export const COMMON_FLAGS = {
  epochs: { type: "int", min: 1, help: "training epochs per run", meta: "N" },
  seeds: { type: "int", min: 1, help: "seeds per row (accuracy is mean ± std over them)", meta: "K" },
  json: { type: "bool", help: "print the table as one JSON object on stdout" },
  svg: { type: "string", help: "draw every row's loss and accuracy curves (first seed) into this SVG file", meta: "FILE" },
  data: { type: "string", help: "Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist; 'slice' = the committed slice)", meta: "DIR" },
  limit: { type: "int", min: 1, help: "use only the first N training and N test images (quick runs)", meta: "N" },
  executor: { type: "string", choices: ["inline", "threads"], help: "pipeline executor (default inline: the numbers do not depend on it)" },
  rows: { type: "list", help: "run only these rows (by key, see the table), e.g. sync,naive", meta: "KEY,..." },
  backend: BACKEND_FLAG,
  quiet: { type: "bool", help: "no per-run lines on stderr" },
} as const satisfies FlagSpecs;
type CommonFlags = FlagValues<typeof COMMON_FLAGS>;

export interface ReproRow {
  /** Short key for --rows. */
  key: string;
  /** Table label. */
  label: string;
  /** Hyper-parameters of this row (batch, lr, momentum, ...). */
  train: Pick<ModelDefaults, "batch" | "lr" | "momentum" | "weightDecay">;
  pipeline: Omit<PipelineConfig, "executor" | "recompute" | "partition" | "chunks">;
}

interface RowResult {
  row: ReproRow;
  /** tau_s per stage from the IR (null for synchronous rows). */
  delays: number[] | null;
  /** Final test accuracy per seed; null where the run diverged. */
  accs: (number | null)[];
  mean: number | null;
  std: number | null;
  /** Peak bytes per stage (first seed's run): weights + optimizer state + extra versions. */
  memory: StageMemory[];
  memoryTotal: number;
  seconds: number;
  curves: RunCurves;
}

type ReproSettings = ReturnType<typeof settingsFrom>;

export function settingsFrom(f: CommonFlags, spec: ModelSpec, defaults: { epochs: number; seeds: number }) {
  if (f.backend !== undefined) setBackend(f.backend);
  return {
    spec, epochs: f.epochs ?? defaults.epochs, seeds: f.seeds ?? defaults.seeds, data: f.data, limit: f.limit, executor: f.executor ?? "inline",
    log: f.quiet ? (): void => {} : (m: string): void => { process.stderr.write(m + "\n"); },
  };
}

export function selectRows(rows: ReproRow[], f: CommonFlags): ReproRow[] {
  const want = f.rows;
  if (!want) return rows;
  for (const k of want) if (!rows.some((r) => r.key === k)) throw new Error(`--rows: unknown row '${k}'; valid: ${rows.map((r) => r.key).join(", ")}`);
  return rows.filter((r) => want.includes(r.key));
}

function delaysOf(p: ReproRow["pipeline"]): number[] | null {
  if (p.schedule !== "async") return null;
  const s = generateSchedule("async", { stages: p.stages, microbatches: p.microbatches, steps: stepsForSteadyState(p.stages, p.microbatches) });
  return measureDelays(s).perStage;
}

async function runRow(row: ReproRow, st: ReproSettings): Promise<RowResult> {
  const accs: (number | null)[] = [];
  let memory: StageMemory[] = [];
  let curves: RunCurves = { name: row.label, loss: [], acc: [] };
  const t0 = performance.now();
  for (let seed = 0; seed < st.seeds; seed++) {
    const opts = {
      model: st.spec.name, spec: st.spec, epochs: st.epochs, batch: row.train.batch, optimizer: optimizerConfigOf({ ...row.train, optimizer: "sgd" }),
      scheduleLr: "cosine" as const, warmup: 0, seed, data: st.data, limit: st.limit, logEvery: Math.max(1, Math.round(32 / row.train.batch)),
      quiet: true,
      pipeline: { ...row.pipeline, chunks: 1, partition: "uniform" as const, executor: st.executor, recompute: "never" as const },
    };
    try {
      const r = await trainPipeline(opts, {
        beforeClose: (ex) => { if (seed === 0 && ex instanceof InlineExecutor) memory = ex.stageMemory(); },
      });
      const acc = r.summary.test_acc;
      accs.push(acc);
      if (seed === 0) {
        const perEpoch = r.summary.history[0]?.step ?? 1;
        curves = {
          name: row.label,
          loss: r.records.filter((x) => x.type === "step").map((x) => [x.step / perEpoch, x.loss ?? NaN]),
          acc: r.summary.history.map((h) => [h.epoch, h.test_acc ?? NaN]),
        };
      }
      st.log(`  ${row.label} seed ${seed}: test acc ${acc === null ? "-" : (acc * 100).toFixed(2)}% (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    } catch (e) {
      if (!/diverged/.test((e as Error).message)) throw e;
      accs.push(null);
      st.log(`  ${row.label} seed ${seed}: diverged (${(e as Error).message})`);
    }
  }
  const ok = accs.filter((a): a is number => a !== null);
  return {
    row, delays: delaysOf(row.pipeline), accs, mean: ok.length ? mean(ok) : null, std: ok.length ? sampleStd(ok) : null, memory,
    memoryTotal: memory.reduce((a, m) => a + m.total, 0), seconds: (performance.now() - t0) / 1000, curves,
  };
}

function kb(b: number): string { return (b / 1024).toFixed(0); }

function formatDelays(d: number[] | null): string {
  if (!d) return "0 (sync)";
  return d.length <= 4 ? d.join(",") : `${d[0]},${d[1]},..,${d[d.length - 1]}`;
}

/** The table: one line per row; `ref` = the row the memory ratio and accuracy gap are relative to. */
function formatTable(results: readonly RowResult[], refKey: string): string {
  const ref = results.find((r) => r.row.key === refKey);
  const head = ["method", "batch", "lr", "momentum", "delays tau_s", "test acc (mean ± std)", "vs ref", "mem/stage KB (max)", "mem total KB", "x ref"];
  const rows = results.map((r) => {
    const nd = r.accs.filter((a) => a === null).length;
    const acc = r.mean === null ? `diverged (${nd}/${r.accs.length})`
      : `${(r.mean * 100).toFixed(2)} ± ${((r.std ?? 0) * 100).toFixed(2)}%${nd ? ` (${nd}/${r.accs.length} diverged)` : ""}`;
    const gap = r.mean !== null && ref?.mean != null ? `${((r.mean - ref.mean) * 100 >= 0 ? "+" : "")}${((r.mean - ref.mean) * 100).toFixed(2)}` : "-";
    const maxStage = r.memory.length ? Math.max(...r.memory.map((m) => m.total)) : 0;
    const ratio = ref && ref.memoryTotal > 0 && r.memoryTotal > 0 ? (r.memoryTotal / ref.memoryTotal).toFixed(2) : "-";
    const { label, train } = r.row;
    return [label, String(train.batch), train.lr.toPrecision(3), train.momentum.toPrecision(4), formatDelays(r.delays), acc, gap,
      r.memory.length ? kb(maxStage) : "-", r.memoryTotal ? kb(r.memoryTotal) : "-", ratio];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

function tableJson(experiment: string, st: ReproSettings, results: readonly RowResult[], extra: object): object {
  return {
    experiment, model: st.spec, epochs: st.epochs, seeds: st.seeds, limit: st.limit ?? null, executor: st.executor, ...extra,
    rows: results.map((r) => ({
      key: r.row.key, method: r.row.label, batch: r.row.train.batch, lr: r.row.train.lr, momentum: r.row.train.momentum, delays: r.delays,
      test_acc: r.accs, test_acc_mean: r.mean, test_acc_std: r.std,
      memory_per_stage_bytes: r.memory.map((m) => ({ stage: m.stage, weights: m.weights, optimizer_state: m.optimizerState, extra: m.extra, total: m.total, versions: m.versions })),
      memory_total_bytes: r.memoryTotal, seconds: Number(r.seconds.toFixed(1)),
    })),
  };
}

/**
 * Runs every row, prints the table (or JSON) under `title` (the run's epochs, seeds and limit
 * appended), writes the SVG; resolves to the exit code.
 */
export async function runExperiment(name: string, heading: string, rows: ReproRow[], st: ReproSettings, f: CommonFlags, refKey: string,
  extra: object): Promise<number> {
  const title = `${heading}, ${st.epochs} epoch(s), ${st.seeds} seed(s)${st.limit ? `, first ${st.limit} images` : ""}`;
  const results: RowResult[] = [];
  for (const row of rows) {
    st.log(`${name}: ${row.label} (${st.seeds} seed(s), ${st.epochs} epoch(s))`);
    results.push(await runRow(row, st));
  }
  if (f.svg !== undefined) writeFileAtomic(f.svg, compareCurvesSvg(results.map((r) => r.curves), title));
  emit(f.json, tableJson(name, st, results, extra), `${title}\n${formatTable(results, refKey)}${f.svg !== undefined ? `\ncurves: ${f.svg}` : ""}`);
  return 0;
}
