// Cutting a model's layer list into pipeline stages. A partition is a `balance`: the number of
// consecutive layers in each of the P = S*v parts (virtual stages). With v chunks per stage, part
// k = c*S + s is chunk c of stage s, so a stage holds non-consecutive layer runs (Megatron's
// interleaving: 16 layers, S=4, v=2 gives stage 0 layers 0-1 and 8-9).

export const PARTITION_METHODS = ["uniform", "parameters", "time"] as const;
export type PartitionMethod = (typeof PARTITION_METHODS)[number];

export interface Partition {
  /** Layers per part (virtual stage), in layer order. */
  readonly balance: number[];
  /** [start, end) layer range of each part. */
  readonly ranges: [number, number][];
  /** Cost of each part when the method had costs (parameter counts or measured time). */
  readonly costs?: number[];
}

function checkParts(layers: number, parts: number): void {
  if (!Number.isInteger(parts) || parts < 1) throw new Error(`number of pipeline parts must be a positive integer, got ${parts}`);
  if (!Number.isInteger(layers) || layers < parts) {
    throw new Error(`cannot cut ${layers} layers into ${parts} parts without an empty stage; use at most ${layers} stages x chunks`);
  }
}

/** Sizes differing by at most one; earlier parts take the extra layers. */
export function uniformBalance(layers: number, parts: number): number[] {
  checkParts(layers, parts);
  const base = Math.floor(layers / parts), extra = layers % parts;
  return Array.from({ length: parts }, (_, i) => base + (i < extra ? 1 : 0));
}

/**
 * Contiguous split of per-layer costs into `parts` non-empty parts minimising the most expensive
 * part (exact dynamic programme, O(parts * L^2)); among optimal splits, the one with the smallest
 * sum of squared part costs, so that the other stages are balanced too.
 */
export function balanceByCost(costs: readonly number[], parts: number): number[] {
  const L = costs.length;
  checkParts(L, parts);
  costs.forEach((c, i) => {
    if (!Number.isFinite(c) || c < 0) throw new Error(`cost of layer ${i} is ${c}; costs must be finite numbers >= 0`);
  });
  const prefix = [0];
  for (const c of costs) prefix.push(prefix[prefix.length - 1] + c);
  const sum = (a: number, b: number): number => prefix[b] - prefix[a];
  // best[p][i]: [max, sumsq] for the first i layers in p parts; cut[p][i]: start of the last part.
  const best: [number, number][][] = Array.from({ length: parts + 1 }, () => new Array<[number, number]>(L + 1).fill([Infinity, Infinity]));
  const cut: number[][] = Array.from({ length: parts + 1 }, () => new Array<number>(L + 1).fill(-1));
  best[0][0] = [0, 0];
  for (let p = 1; p <= parts; p++) {
    for (let i = p; i <= L - (parts - p); i++) {
      for (let j = p - 1; j < i; j++) {
        const prev = best[p - 1][j];
        if (prev[0] === Infinity) continue;
        const c = sum(j, i);
        const cand: [number, number] = [Math.max(prev[0], c), prev[1] + c * c];
        const cur = best[p][i];
        if (cand[0] < cur[0] || (cand[0] === cur[0] && cand[1] < cur[1])) { best[p][i] = cand; cut[p][i] = j; }
      }
    }
  }
  const balance: number[] = [];
  for (let p = parts, i = L; p > 0; p--) { const j = cut[p][i]; balance.unshift(i - j); i = j; }
  return balance;
}

/** Checks an explicit balance: one positive integer per part, summing to the layer count. */
export function checkBalance(balance: readonly number[], layers: number, parts: number): void {
  const hint = (): string => (layers >= parts ? `; a valid balance is --balance ${uniformBalance(layers, parts).join(",")}` : "");
  const shown = balance.join(",");
  if (balance.length !== parts) {
    throw new Error(`--balance ${shown} has ${balance.length} entries, but the pipeline has ${parts} parts (stages x chunks)${hint()}`);
  }
  balance.forEach((n, i) => {
    if (!Number.isInteger(n) || n < 1) throw new Error(`--balance ${shown}: entry ${i} is ${n}; every stage needs at least one layer${hint()}`);
  });
  const total = balance.reduce((a, b) => a + b, 0);
  if (total !== layers) {
    const what = total < layers ? `would drop ${layers - total} layer(s)` : `asks for ${total - layers} layer(s) too many`;
    throw new Error(`--balance ${shown} sums to ${total}, but the model has ${layers} layers (it ${what})${hint()}`);
  }
}

/** Parses "3,2,3" and checks it; errors name the bad entry and suggest a valid balance. */
export function parseBalance(text: string, layers: number, parts: number): number[] {
  const items = text.split(",").map((x) => x.trim());
  const balance = items.map((x) => {
    if (!/^\d+$/.test(x)) {
      const hint = layers >= parts && parts >= 1 ? `; e.g. --balance ${uniformBalance(layers, parts).join(",")}` : "";
      throw new Error(`--balance '${text}': '${x}' is not a positive integer; give comma-separated layer counts${hint}`);
    }
    return Number(x);
  });
  checkBalance(balance, layers, parts);
  return balance;
}

export function rangesOf(balance: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  for (const n of balance) { out.push([start, start + n]); start += n; }
  return out;
}

export interface PartitionRequest {
  /** Number of partitionable layers (units) in the model. */
  layers: number;
  stages: number;
  chunks?: number;
  method?: PartitionMethod;
  /** Parameter count per layer (method "parameters"). */
  parameters?: readonly number[];
  /** Measured forward+backward time per layer (method "time"). */
  times?: readonly number[];
  /** Explicit balance; overrides the method. */
  balance?: readonly number[];
}

export function partitionLayers(r: PartitionRequest): Partition {
  const parts = r.stages * (r.chunks ?? 1);
  if (r.balance) {
    checkBalance(r.balance, r.layers, parts);
    return { balance: [...r.balance], ranges: rangesOf(r.balance) };
  }
  const method = r.method ?? "uniform";
  const withCosts = (costs: readonly number[] | undefined, what: string): Partition => {
    if (!costs) throw new Error(`partition method '${method}' needs ${what} per layer`);
    if (costs.length !== r.layers) throw new Error(`partition method '${method}': got ${costs.length} ${what} for ${r.layers} layers`);
    const balance = balanceByCost(costs, parts);
    const ranges = rangesOf(balance);
    return { balance, ranges, costs: ranges.map(([a, b]) => costs.slice(a, b).reduce((x, y) => x + y, 0)) };
  };
  switch (method) {
    case "uniform": { const balance = uniformBalance(r.layers, parts); return { balance, ranges: rangesOf(balance) }; }
    case "parameters": return withCosts(r.parameters, "parameter counts");
    case "time": return withCosts(r.times, "times");
    default: throw new Error(`unknown partition method '${String(method)}'; choose one of: ${PARTITION_METHODS.join(", ")}`);
  }
}

/** Layer ranges held by stage s: its chunks c = 0..v-1 are parts c*S + s. */
export function stageLayerRanges(p: Partition, stages: number, chunks: number): [number, number][][] {
  if (p.ranges.length !== stages * chunks) {
    throw new Error(`partition has ${p.ranges.length} parts, expected ${stages} stages x ${chunks} chunks = ${stages * chunks}`);
  }
  return Array.from({ length: stages }, (_, s) => Array.from({ length: chunks }, (_, c) => p.ranges[c * stages + s]));
}

/** One line per stage: "stage 0: layers 0-1, 8-9 (cost 12.5)". */
export function formatPartition(p: Partition, stages: number, chunks: number): string {
  return stageLayerRanges(p, stages, chunks)
    .map((rs, s) => {
      const layers = rs.map(([a, b]) => (b - a === 1 ? `${a}` : `${a}-${b - 1}`)).join(", ");
      const cost = p.costs ? ` (cost ${rs.reduce((t, _r, c) => t + (p.costs as number[])[c * stages + s], 0).toPrecision(4)})` : "";
      return `stage ${s}: layers ${layers}${cost}`;
    })
    .join("\n");
}
