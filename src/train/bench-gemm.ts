// `bench gemm`: GFLOP/s of the addon's matrix product per provider (oneDNN, OpenBLAS), per shape
// and per operand layout, each provider forced in turn on the same buffers, repetitions
// interleaved across providers so that load from other work hits all of them alike. Also reports
// which provider the fixed rule picks for each product.
import { loadNativeAddon, type GemmProviderName } from "../backend/native.js";
import { median } from "../util/stats.js";

/** Operand layouts: n = stored as used, t = stored transposed (first letter a, second b). */
const GEMM_LAYOUTS = ["nn", "nt", "tn", "tt"] as const;
type GemmLayout = (typeof GEMM_LAYOUTS)[number];
export const GEMM_PROVIDERS: readonly GemmProviderName[] = ["onednn", "openblas"];

interface GemmShapeSpec { batch: number; m: number; k: number; n: number; layouts: readonly GemmLayout[]; models: string[] }

/**
 * Three plain shapes (no layout given, so each runs in all four layouts), then the
 * products of BENCH_CONFIGS' training steps as `bench engine` runs them (model:batch*MxKxN/layout).
 */
export const DEFAULT_GEMM_SHAPES: readonly string[] = [
  "32x1024x1024", "256x1024x1024", "2048x256x768",
  "mlp:128x784x1024/nt", "mlp:128x1024x1024/nt", "mlp:128x1024x1024/nn", "mlp:1024x128x1024/tn", "mlp:1024x128x784/tn",
  "mlp:128x1024x10/nt", "mlp:10x128x1024/tn",
  "cnn:64x3136x128/nt", "cnn:64x128x3136/nn", "cnn:128x64x3136/tn",
  "gpt:2048x256x768/nt", "gpt:2048x256x256/nt", "gpt:2048x256x1024/nt", "gpt:2048x1024x256/nt",
  "gpt:2048x256x256/nn", "gpt:2048x256x1024/nn", "gpt:2048x1024x256/nn", "gpt:2048x768x256/nn",
  "gpt:256x2048x256/tn", "gpt:256x2048x1024/tn", "gpt:1024x2048x256/tn", "gpt:768x2048x256/tn",
  "gpt:64*128x64x128/nt", "gpt:64*128x128x64/nn", "gpt:64*128x128x64/tn",
];

const SPEC = /^(?:([a-z]+):)?(?:(\d+)\*)?(\d+)x(\d+)x(\d+)(?:\/(nn|nt|tn|tt))?$/;

/** Parses "[model:][B*]MxKxN[/layout]" (no layout: all four). Throws naming the spec. */
function parseGemmShape(spec: string): GemmShapeSpec {
  const mt = SPEC.exec(spec.trim());
  const dims = mt ? [mt[2] ?? "1", mt[3], mt[4], mt[5]].map(Number) : [];
  if (!mt || dims.some((d) => !Number.isSafeInteger(d) || d < 1)) {
    throw new Error(`--shapes: '${spec}' is not a product; expected [B*]MxKxN[/nn|nt|tn|tt] with positive sizes, e.g. 256x1024x1024/nt or 64*128x64x128`);
  }
  const [batch, m, k, n] = dims;
  return { batch, m, k, n, layouts: mt[6] ? [mt[6] as GemmLayout] : GEMM_LAYOUTS, models: mt[1] ? [mt[1]] : [] };
}

/** Parsed specs with the same product and layout merged (their model labels joined). */
export function gemmCases(specs: readonly string[]): { shape: GemmShapeSpec; layout: GemmLayout }[] {
  const out = new Map<string, { shape: GemmShapeSpec; layout: GemmLayout }>();
  for (const spec of specs) {
    const s = parseGemmShape(spec);
    for (const layout of s.layouts) {
      const key = `${s.batch}*${s.m}x${s.k}x${s.n}/${layout}`;
      const prev = out.get(key);
      if (prev) for (const md of s.models) { if (!prev.shape.models.includes(md)) prev.shape.models.push(md); }
      else out.set(key, { shape: { ...s, layouts: [layout], models: [...s.models] }, layout });
    }
  }
  return [...out.values()];
}

function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; a[i] = x / 2 ** 32 - 0.5; }
  return a;
}

/**
 * Times one product per provider: `reps` interleaved rounds, each `inner` calls; medians. Each row
 * names the provider the fixed rule picks for this product on this process's ISA (`rule`).
 */
export function benchGemmCase(shape: GemmShapeSpec, layout: GemmLayout, reps: number, providers: readonly GemmProviderName[]) {
  const addon = loadNativeAddon();
  const { batch, m, k, n } = shape;
  const ta = layout[0] === "t", tb = layout[1] === "t";
  const a = fill(batch * m * k, 1), b = fill(batch * k * n, 2), out = new Float32Array(batch * m * n);
  const flops = 2 * batch * m * k * n;
  // A fixed number of calls per timing (about 20 MFLOP, so tiny products are not timer noise).
  const inner = Math.max(1, Math.ceil(2e7 / flops));
  const times = new Map<GemmProviderName, number[]>(providers.map((p) => [p, []]));
  try {
    for (let r = -1; r < reps; r++) {
      for (const p of providers) {
        addon.setGemmMode(p);
        const t0 = performance.now();
        for (let i = 0; i < inner; i++) addon.matmul(a, b, out, batch, m, k, n, ta, tb, false, false, null);
        if (r >= 0) times.get(p)?.push((performance.now() - t0) / inner); // round -1 warms up
      }
    }
  } finally {
    addon.setGemmMode("auto");
  }
  const rule = addon.gemmProvider(batch, m, k, n, ta, tb);
  return providers.map((p) => {
    const ms = median(times.get(p) ?? []);
    return {
      shape: `${batch > 1 ? `${batch}*` : ""}${m}x${k}x${n}`, batch, m, k, n, layout, provider: p,
      gflops: Number((flops / ms / 1e6).toPrecision(3)), ms: Number(ms.toPrecision(4)), rule, models: shape.models, reps,
    };
  });
}
