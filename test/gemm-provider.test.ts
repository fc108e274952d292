// The GEMM provider rule (native/gemm_provider.h): each provider agrees with the reference backend
// within the float32 dot-product bound (the one test/backend-agreement.test.ts states), the rule is a
// pure function of (ISA, OpenBLAS core, shape, layout), and a provider gives the same bits on the
// main thread and on a worker thread. OPENBLAS_CORETYPE is never changed here: which core OpenBLAS
// runs is the machine's, and the rule is tested by passing the core as an argument instead.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { referenceBackend as ref } from "../src/backend/reference.js";
import { loadNativeAddon, type GemmIsa, type GemmMode, type GemmProviderName } from "../src/backend/native.js";
import { Rng } from "../src/tensor/random.js";

let skip: string | false = false;
try {
  loadNativeAddon();
} catch (e) {
  skip = `native addon unavailable: ${(e as Error).message}`;
}
const A = (): ReturnType<typeof loadNativeAddon> => loadNativeAddon();
/** The loader module, for worker threads and child processes to load the addon as we do. */
const NATIVE_URL = new URL("../src/backend/native.js", import.meta.url).href;

const rng = new Rng(987);
const U = 2 ** -24;
function randn(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}
const abs = (a: Float32Array): Float32Array => a.map(Math.abs);

/** |got - want| <= gamma(terms + 2) * bound element-wise (Higham 3.5; see backend-agreement). */
function bounded(label: string, got: Float32Array, want: Float32Array, bound: Float32Array, terms: number): void {
  const gamma = ((terms + 2) * U) / (1 - (terms + 2) * U);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= gamma * bound[i] + 1e-38)) {
      assert.fail(`${label}: element ${i} differs by ${err.toExponential(3)} (native ${got[i]}, reference ${want[i]}), bound ${(gamma * bound[i]).toExponential(3)}`);
    }
  }
}

/** Runs fn with this thread's provider forced to `mode`, then back to the rule. */
function withMode<T>(mode: GemmMode, fn: () => T): T {
  A().setGemmMode(mode);
  try { return fn(); } finally { A().setGemmMode("auto"); }
}

type Case = [batch: number, m: number, k: number, n: number, ta: boolean, tb: boolean, acc: boolean, bb: boolean, bias: boolean];
const CASES: Case[] = [
  [1, 3, 5, 4, false, false, false, false, false],
  [1, 1, 1, 1, false, false, false, false, false],
  [3, 17, 33, 9, true, false, false, false, false],
  [2, 16, 64, 31, false, true, false, false, false],
  [2, 5, 19, 23, true, true, false, false, false],
  [1, 37, 300, 70, false, true, true, false, false],
  [4, 6, 11, 13, false, false, false, true, false],
  [4, 6, 11, 13, true, false, true, true, false],
  [2, 129, 65, 33, false, false, true, false, false],
  [1, 37, 300, 70, false, true, false, false, true],
  [1, 5, 7, 3, false, true, true, false, true],
  [3, 8, 9, 10, false, false, false, true, true],
  [2, 6, 11, 13, true, false, true, false, true],
  [1, 96, 260, 130, true, true, false, false, true],
  [1, 300, 520, 40, false, false, false, false, false],
];

describe("GEMM providers agree with the reference backend", { skip }, () => {
  for (const provider of ["onednn", "openblas"] as const) {
    test(`${provider}: batches, transposes, accumulate, shared b, bias (float32 dot-product bound)`, () => {
      for (const [batch, m, k, n, ta, tb, acc, bb, hasBias] of CASES) {
        const label = `${provider} batch=${batch} m=${m} k=${k} n=${n} transA=${ta} transB=${tb} acc=${acc} bBroadcast=${bb} bias=${hasBias}`;
        const a = randn(batch * m * k), b = randn((bb ? 1 : batch) * k * n), bias = hasBias ? randn(n) : null;
        const out0 = randn(batch * m * n);
        const got = out0.slice(), want = out0.slice();
        withMode(provider, () => A().matmul(a, b, got, batch, m, k, n, ta, tb, acc, bb, bias));
        ref.matmul(a, b, want, batch, m, k, n, ta, tb, acc, bb, bias);
        const bound = new Float32Array(batch * m * n);
        ref.matmul(abs(a), abs(b), bound, batch, m, k, n, ta, tb, false, bb, bias ? abs(bias) : null);
        if (acc) for (let i = 0; i < bound.length; i++) bound[i] += Math.abs(out0[i]);
        bounded(label, got, want, bound, k + (hasBias ? 1 : 0));
      }
    });
  }

  test("OpenBLAS runs one thread per caller, and its products start no OS threads", () => {
    assert.equal(A().gemmInfo().openblasThreads, 1);
    const a = randn(300 * 300), b = randn(300 * 300), out = new Float32Array(300 * 300);
    const tasks = (): number => readdirSync("/proc/self/task").length;
    withMode("openblas", () => A().matmul(a, b, out, 1, 300, 300, 300, false, false, false, false, null)); // first call allocates
    const before = tasks();
    withMode("openblas", () => {
      for (let i = 0; i < 5; i++) A().matmul(a, b, out, 1, 300, 300, 300, i % 2 === 0, true, false, false, null);
    });
    assert.equal(tasks(), before, "OpenBLAS products started OS threads");
    assert.equal(A().gemmInfo().openblasThreads, 1);
  });

  test("bad provider names are refused, naming the value and the valid ones", () => {
    assert.throws(() => A().setGemmMode("mkl" as GemmMode), /unknown mode 'mkl'; valid: auto, onednn, openblas/);
    assert.throws(() => A().gemmProvider(1, 2, 3, 4, false, false, "sse" as GemmIsa), /isa 'sse'; valid: avx2, avx512/);
    const r = spawnSync(process.execPath, ["--input-type=module", "-e",
      `const { loadNativeAddon } = await import(${JSON.stringify(NATIVE_URL)}); loadNativeAddon().gemmInfo();`],
      { encoding: "utf8", env: { ...process.env, PIPEWRIGHT_ISA: "avx9" } });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /PIPEWRIGHT_ISA='avx9' is not an? [a-z ]+; valid: (avx2, avx512|avx512, avx2)/);
  });
});


const ISAS: GemmIsa[] = ["avx2", "avx512"];
const CORES = ["Haswell", "Zen", "SkylakeX", "Cooperlake", "Sandybridge", "Prescott"];
const SHAPES: [number, number, number, number][] = [
  [1, 32, 1024, 1024], [1, 256, 1024, 1024], [1, 2048, 256, 768], [1, 128, 784, 1024], [1, 128, 1024, 10],
  [1, 10, 128, 1024], [1, 64, 3136, 128], [64, 128, 64, 128], [64, 128, 128, 64], [1, 1, 1, 1],
];
const LAYOUTS: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];

/** The rule's answer for every (isa, core, shape, layout) of the grid, in a fixed order. */
function ruleGrid(): GemmProviderName[] {
  const out: GemmProviderName[] = [];
  for (const isa of ISAS) for (const core of CORES) for (const [b, m, k, n] of SHAPES) for (const [ta, tb] of LAYOUTS) {
    out.push(A().gemmProvider(b, m, k, n, ta, tb, isa, core));
  }
  return out;
}

describe("the GEMM provider rule is a fixed function of (cpu, shape, layout)", { skip }, () => {
  test("the same answers every time, whatever this thread's forced provider, and on a worker thread", async () => {
    const first = ruleGrid();
    assert.deepEqual(ruleGrid(), first);
    assert.deepEqual(withMode("openblas", ruleGrid), first, "forcing a provider changed the rule");
    assert.deepEqual(withMode("onednn", ruleGrid), first, "forcing a provider changed the rule");
    const code = `
      const { parentPort, workerData } = require("node:worker_threads");
      import(workerData.url).then(({ loadNativeAddon }) => {
        const a = loadNativeAddon();
        const out = [];
        for (const isa of workerData.isas) for (const core of workerData.cores) for (const [b, m, k, n] of workerData.shapes)
          for (const [ta, tb] of workerData.layouts) out.push(a.gemmProvider(b, m, k, n, ta, tb, isa, core));
        parentPort.postMessage(out);
      });
    `;
    const inWorker = await new Promise<GemmProviderName[]>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { url: NATIVE_URL, isas: ISAS, cores: CORES, shapes: SHAPES, layouts: LAYOUTS } });
      w.once("message", (m: GemmProviderName[]) => { void w.terminate(); resolve(m); });
      w.once("error", reject);
    });
    assert.deepEqual(inWorker, first, "a worker thread's rule differs");
  });

  test("AVX-512 keeps oneDNN; OpenBLAS only where its core is as wide as the ISA", () => {
    for (const core of CORES) for (const [b, m, k, n] of SHAPES) for (const [ta, tb] of LAYOUTS) {
      assert.equal(A().gemmProvider(b, m, k, n, ta, tb, "avx512", core), "onednn", `avx512 ${core} ${b}*${m}x${k}x${n}`);
      for (const narrow of ["Sandybridge", "Prescott"]) {
        assert.equal(A().gemmProvider(b, m, k, n, ta, tb, "avx2", narrow), "onednn", `avx2 with OpenBLAS core ${narrow}`);
      }
    }
    assert.equal(A().gemmProvider(1, 256, 1024, 1024, false, false, "avx2", "Haswell"), "openblas");
    assert.equal(A().gemmProvider(1, 256, 1024, 1024, false, false, "avx2", "Zen"), "openblas");
  });
});

describe("a provider gives the same bits on the main thread and on a worker thread", { skip }, () => {
  for (const mode of ["auto", "onednn", "openblas"] as const) {
    test(mode, async () => {
      const shapes: Case[] = [[1, 32, 256, 512, false, true, false, false, true], [1, 200, 300, 100, false, false, false, false, false],
        [1, 100, 200, 300, true, false, true, false, false], [8, 64, 32, 64, false, true, false, false, false]];
      const inputs = shapes.map(([batch, m, k, n, , , , bb, hasBias]) => ({
        a: randn(batch * m * k), b: randn((bb ? 1 : batch) * k * n), out: randn(batch * m * n), bias: hasBias ? randn(n) : null,
      }));
      const mine = shapes.map((s, i) => {
        const o = inputs[i].out.slice();
        withMode(mode, () => A().matmul(inputs[i].a, inputs[i].b, o, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], inputs[i].bias));
        return o;
      });
      const code = `
        const { parentPort, workerData } = require("node:worker_threads");
        import(workerData.url).then(({ loadNativeAddon }) => {
          const a = loadNativeAddon();
          a.setGemmMode(workerData.mode);
          parentPort.postMessage(workerData.shapes.map((s, i) => {
            const x = workerData.inputs[i], o = x.out.slice();
            a.matmul(x.a, x.b, o, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], x.bias);
            return o;
          }));
        });
      `;
      const theirs = await new Promise<Float32Array[]>((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { url: NATIVE_URL, mode, shapes, inputs } });
        w.once("message", (m: Float32Array[]) => { void w.terminate(); resolve(m); });
        w.once("error", reject);
      });
      for (let i = 0; i < shapes.length; i++) assert.deepEqual(theirs[i], mine[i], `${mode} ${shapes[i].join(",")}`);
    });
  }
});

describe("bench compare holds PyTorch to the ISA we emulate", () => {
  test("AVX2 emulated: torch's OpenBLAS gets Haswell kernels and ATen AVX2; otherwise its own detection", async () => {
    const { torchEnv } = await import("../src/cli/bench.js");
    const capped = torchEnv({ PIPEWRIGHT_ISA: "avx2", ONEDNN_MAX_CPU_ISA: "AVX2", OPENBLAS_CORETYPE: "Sandybridge" }, true);
    assert.equal(capped.OPENBLAS_CORETYPE, "Haswell");
    assert.equal(capped.ATEN_CPU_CAPABILITY, "avx2");
    assert.equal(capped.ONEDNN_MAX_CPU_ISA, "AVX2");
    assert.equal(capped.OPENBLAS_NUM_THREADS, "1");
    const plain = torchEnv({ OPENBLAS_CORETYPE: "Sandybridge" }, false);
    assert.equal(plain.OPENBLAS_CORETYPE, undefined, "a machine's OPENBLAS_CORETYPE must not slow the baseline");
    assert.equal(plain.ATEN_CPU_CAPABILITY, undefined);
  });
});

describe("pipewright bench gemm", { skip }, () => {
  const cli = new URL("../src/cli/main.js", import.meta.url).pathname;
  test("--json: one object per product, layout and provider, each naming the CPU and the rule's choice", () => {
    const r = spawnSync(process.execPath, [cli, "bench", "gemm", "--json", "--reps", "3", "--shapes", "gpt:8x16x8/nt,2*4x5x6"], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const rows = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(rows.length, (1 + 4) * 2);
    assert.deepEqual(rows.map((x) => `${String(x.shape)}/${String(x.layout)}:${String(x.provider)}`).slice(0, 4),
      ["8x16x8/nt:onednn", "8x16x8/nt:openblas", "2*4x5x6/nn:onednn", "2*4x5x6/nn:openblas"]);
    for (const x of rows) {
      assert.ok(typeof x.gflops === "number" && x.gflops > 0, JSON.stringify(x));
      assert.ok(x.rule === "onednn" || x.rule === "openblas");
      const cpu = x.cpu as { model: string; isa: string; cores: number };
      assert.ok(cpu.model.length > 0 && /AVX/.test(cpu.isa) && cpu.cores >= 1, JSON.stringify(cpu));
    }
    assert.deepEqual(rows[0].models, ["gpt"]);
  });
  test("a malformed shape is refused, naming it and the syntax", () => {
    const r = spawnSync(process.execPath, [cli, "bench", "gemm", "--shapes", "12x0x4"], { encoding: "utf8" });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /'12x0x4' is not a product; expected \[B\*\]MxKxN/);
  });
});

describe("bench compare --interleaved steps both sides by turns", () => {
  // A stand-in for scripts/bench_torch.py --serve (PyTorch is not a test dependency): it answers
  // the same protocol, each step's "milliseconds" being the request count, so the medians are known.
  const fake = (body: string): string => {
    const dir = mkdtempSync(join(tmpdir(), "pw-serve-"));
    const path = join(dir, "serve.cjs");
    writeFileSync(path, body);
    return path;
  };
  const SERVE = `
    const rl = require("node:readline").createInterface({ input: process.stdin });
    console.log(JSON.stringify({ ready: true, backend: "fake torch" }));
    let n = 0;
    rl.on("line", (l) => { if (l !== "step") process.exit(2); console.log(String(++n)); });
  `;
  test("medians of the timed steps after warm-up; the server's own milliseconds", async () => {
    const { interleavedSteps } = await import("../src/cli/bench-interleaved.js");
    const { BENCH_CONFIGS } = await import("../src/nn/models/index.js");
    const mlp = BENCH_CONFIGS.find((c) => c.model === "mlp");
    assert.ok(mlp);
    const r = await interleavedSteps(mlp, { steps: 5, warmup: 2, seed: 0, python: process.execPath, script: fake(SERVE), env: process.env });
    assert.equal(r.torchMs, 5, "steps 3..7 answered 3..7: median 5");
    assert.equal(r.torchBackend, "fake torch");
    assert.ok(r.oursMs > 0);
  });
  test("a server that dies mid-run is an error naming it, not a hang", async () => {
    const { interleavedSteps } = await import("../src/cli/bench-interleaved.js");
    const { BENCH_CONFIGS } = await import("../src/nn/models/index.js");
    const mlp = BENCH_CONFIGS.find((c) => c.model === "mlp");
    assert.ok(mlp);
    const dies = fake(`console.log(JSON.stringify({ ready: true })); process.stdin.once("data", () => process.exit(3));`);
    await assert.rejects(interleavedSteps(mlp, { steps: 5, warmup: 0, seed: 0, python: process.execPath, script: dies, env: process.env }),
      /--serve --models mlp exited \(code 3\) before answering/);
  });
});
