// The JSON-lines metrics file of a training run: one record per logged step and one per epoch, all
// with the same keys (null where a value does not apply), so tools can read it without cases.
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname, resolve } from "node:path";

export interface MetricsRecord {
  type: "step" | "epoch";
  /** 1-based epoch the record belongs to. */
  epoch: number;
  /** Optimizer steps done so far (global, counting from the start of the first run). */
  step: number;
  /** Step: that step's loss. Epoch: mean training loss over the epoch. */
  loss: number | null;
  test_loss: number | null;
  /** Test accuracy in [0, 1]; null for language models and step records. */
  test_acc: number | null;
  samples_per_s: number | null;
  lr: number;
  elapsed_s: number;
  /** Language models: exp(test_loss). */
  test_ppl?: number | null;
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

  write(r: MetricsRecord): void {
    if (this.fd === null) throw new Error(`metrics file ${this.path} is closed`);
    writeSync(this.fd, JSON.stringify(r) + "\n");
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

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
