// `bench compare --interleaved`: our training step and PyTorch's alternate step by step, both
// processes warm and alive (scripts/bench_torch.py --serve answers one step per request), so that
// load from other work on a shared machine falls on both sides alike instead of on whichever ran
// during a busy minute. Each side's median step is then compared as in plain `bench compare`.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import type { BenchConfig } from "../nn/models/index.js";
import { benchStep } from "../train/bench-engine.js";
import { median } from "../util/stats.js";

interface InterleavedOptions { steps: number; warmup: number; seed: number; python: string; script: string; env: NodeJS.ProcessEnv }
interface InterleavedResult { oursMs: number; torchMs: number; torchBackend: string }

/** A line reader over a child's stdout: next() resolves with the next line, rejects naming the exit code if it exits first. */
function lines(child: ChildProcess, what: string): () => Promise<string> {
  if (!child.stdout) throw new Error(`${what}: no stdout`);
  const it = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return async () => {
    const r = await it.next();
    if (!r.done) return r.value;
    const code = child.exitCode ?? (await once(child, "exit"))[0];
    throw new Error(`${what} exited (code ${String(code)}) before answering`);
  };
}

/** Runs warm-up then timed steps of `c` here and in PyTorch, alternating ours, theirs, ours, ... */
export async function interleavedSteps(c: BenchConfig, o: InterleavedOptions): Promise<InterleavedResult> {
  const what = `${o.script} --serve --models ${c.model}`;
  const child = spawn(o.python, [o.script, "--serve", "--models", c.model, "--seed", String(o.seed)],
    { env: o.env, stdio: ["pipe", "pipe", "inherit"] });
  child.stdin?.on("error", () => { /* a dead server is reported by its close, through next() */ });
  const next = lines(child, what);
  try {
    const first = await next();
    let hello: { ready?: boolean; backend?: string } = {};
    try { hello = JSON.parse(first) as typeof hello; } catch { /* reported below */ }
    if (hello.ready !== true) throw new Error(`${what}: expected {"ready": true} first, got '${first.slice(0, 80)}'`);
    const { step } = benchStep(c, o.seed);
    const ours: number[] = [], torch: number[] = [];
    for (let i = 0; i < o.warmup + o.steps; i++) {
      const t0 = performance.now();
      step();
      const dt = performance.now() - t0;
      child.stdin?.write("step\n");
      const theirs = Number(await next());
      if (!Number.isFinite(theirs)) throw new Error(`${what}: expected milliseconds, got a non-number`);
      if (i >= o.warmup) { ours.push(dt); torch.push(theirs); }
    }
    return { oursMs: median(ours), torchMs: median(torch), torchBackend: hello.backend ?? "torch" };
  } finally {
    child.stdin?.end();
  }
}
