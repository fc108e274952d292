// The JSON-lines metrics file of a training run: one record per logged step and one per epoch, all
// with the same keys (null where a value does not apply), so tools can read it without cases.
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { writeFileAtomic } from "../checkpoint/atomic-write.js";
import type { CurvePoint } from "../report/loss-curve-svg.js";
import { round } from "../util/stats.js";

/** A chart's fields (type, epoch, step, losses, test accuracy and perplexity) and the run's rates. */
export interface MetricsRecord extends CurvePoint {
  samples_per_s: number | null;
  lr: number;
  elapsed_s: number;
}

export class MetricsWriter {
  private fd: number | null;

  /** Opens `path` for writing; `append` keeps earlier records (a resumed run continues the file). */
  constructor(readonly path: string, append: boolean) {
    const p = resolve(path);
    mkdirSync(dirname(p), { recursive: true });
    try {
      this.fd = openSync(p, append ? "a" : "w");
    } catch (e) {
      throw new Error(`cannot open metrics file ${p}: ${(e as Error).message}`);
    }
  }

  /**
   * Continues the file of a run resumed from a checkpoint taken after `at.epoch` epochs, `at.step`
   * steps: later records were written by the interrupted run past its last checkpoint and are about
   * to be written again, so they are dropped first (atomic rewrite: a failure leaves the file as it
   * was). No file yet: a new one.
   */
  static resume(path: string, at: { epoch: number; step: number }): MetricsWriter {
    let text: string | null = null;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
        throw new Error(`cannot read metrics file ${resolve(path)} to continue it: ${(e as Error).message}`);
      }
    }
    if (text !== null) {
      // parseMetrics names a corrupt line; non-blank lines map 1:1 to its records, and kept lines are copied verbatim.
      const records = parseMetrics(text, path);
      const lines = text.split("\n").filter((l) => l.trim() !== "");
      const kept = lines.filter((_, i) => {
        const r = records[i] as Partial<MetricsRecord> | null;
        if (typeof r?.step !== "number") {
          throw new Error(`${path}: record ${i + 1} (${lines[i].slice(0, 80)}) has no numeric "step"; cannot continue this metrics file`);
        }
        // An epoch of zero steps would leave its record at the checkpoint's step: the epoch tells.
        return r.step <= at.step && !(r.type === "epoch" && (r.epoch ?? 0) > at.epoch);
      });
      if (kept.length < lines.length) writeFileAtomic(path, kept.map((l) => `${l}\n`).join(""));
    }
    return new MetricsWriter(path, true);
  }

  write(r: MetricsRecord): void {
    if (this.fd === null) throw new Error(`metrics file ${this.path} is closed`);
    writeSync(this.fd, JSON.stringify(r) + "\n");
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** A metric rounded to 6 significant digits, as the metrics file and summaries hold it. */
export function roundMetric(x: number): number { return round(x, 6); }

/** Parses a metrics file's text; a bad line is reported with its number. */
export function parseMetrics(text: string, file = "<metrics>"): MetricsRecord[] {
  const out: MetricsRecord[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      out.push(JSON.parse(line) as MetricsRecord);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: not a JSON metrics record (${(e as Error).message})`);
    }
  });
  return out;
}
