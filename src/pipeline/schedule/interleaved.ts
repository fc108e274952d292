// Interleaved 1F1B (Megatron PTD-P): each stage holds v chunks; a micro-batch visits virtual stages
// chunk-major (stage s chunk c = virtual stage c*S+s). Micro-batches go in rounds of S through one
// chunk before the next chunk, which is why M must be a multiple of S.
import { action, type Action, type Schedule } from "./action.js";
import { fromStageLists, type ResolvedOptions } from "./options.js";
import { oneFOneB } from "./one-f-one-b.js";

export function interleaved(o: ResolvedOptions): Schedule {
  const { stages: S, microbatches: M, chunks: v, steps } = o;
  if (v === 1) return { ...oneFOneB(o), name: "interleaved" };
  if (M % S !== 0) {
    const lo = Math.max(S, M - (M % S));
    throw new Error(
      `interleaved needs the micro-batch count to be a multiple of the stage count: M=${M}, S=${S}; try --microbatches ${lo}` +
        (lo !== M + S - (M % S) ? ` or ${M + S - (M % S)}` : ""),
    );
  }
  const total = M * v;
  // k-th forward unit of a stage: rounds of S micro-batches through chunk 0, then chunk 1, ...
  const fwd = (k: number): [number, number] => [Math.floor(k / (S * v)) * S + (k % S), Math.floor((k % (S * v)) / S)];
  const bwd = (k: number): [number, number] => {
    const [mb, c] = fwd(k);
    return [mb, v - 1 - c];
  };
  const lists: Action[][] = [];
  for (let s = 0; s < S; s++) {
    // Enough warm-up forwards that the first backward's inputs have arrived (Megatron's count).
    const warmup = Math.min((S - 1 - s) * 2 + (v - 1) * S, total);
    const list: Action[] = [];
    for (let k = 0; k < steps; k++) {
      const base = k * M;
      const F = (u: number): Action => { const [mb, c] = fwd(u); return action(s, "F", base + mb, c); };
      const B = (u: number): Action => { const [mb, c] = bwd(u); return action(s, "B", base + mb, c); };
      for (let u = 0; u < warmup; u++) list.push(F(u));
      for (let i = 0; i < total - warmup; i++) list.push(F(warmup + i), B(i));
      for (let u = total - warmup; u < total; u++) list.push(B(u));
      list.push(action(s, "STEP", k));
    }
    lists.push(list);
  }
  return fromStageLists("interleaved", o, lists, { splitBackward: false, synchronous: true });
}
