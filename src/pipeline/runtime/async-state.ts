// The state an asynchronous run carries from one window of no-flush lists to the next, and its
// checkpoint form. Every window drains (no micro-batch in flight when it ends), so besides the
// weights and optimizer state (checkpointed as for synchronous runs) a stage keeps only:
//   steps     its asynchronous optimizer steps so far, PipeMare T1's k
//   buffers   its policy's carried weight-sized buffers (PolicyState): PipeMare T2's u = w - tau*delta
//             ("pipemare_u"), LWP difference form's w_prev ("lwp_prev"); stash/2bw/naive/LWP velocity
//             form keep none (Spike Compensation's momentum is optimizer state)
// In a checkpoint: metadata extra.async = {stages: [{stage, steps, policy, buffers: [names]}]} and one
// flat tensor per buffer and parameter, "async.<buffer>.<parameter name>" (an "extra." tensor).
import { Tensor } from "../../tensor/tensor.js";
import { POLICY_NAMES, type PolicyName } from "../weights/index.js";

export interface AsyncStageMeta {
  stage: number;
  /** Asynchronous optimizer steps taken so far (PipeMare T1's k). */
  steps: number;
  /** The policy that kept the buffers (a resume with another policy starts its buffers from zero). */
  policy: PolicyName;
  /** Names of the policy's buffers (PolicyState keys). */
  buffers: string[];
}

/** Every stage's state between windows (plain data: crosses worker threads as is). */
export interface AsyncState {
  stages: AsyncStageMeta[];
  /** "<buffer>.<parameter name>" -> that parameter's array of the buffer (parameter names are unique). */
  buffers: Record<string, Float32Array>;
}

export const ASYNC_TENSOR_PREFIX = "async.";

/** One state from the parts held by several workers (null: no worker holds one, no asynchronous method runs). */
export function mergeAsyncStates(all: readonly (AsyncState | null)[]): AsyncState | null {
  const parts = all.filter((p): p is AsyncState => p !== null);
  return parts.length === 0 ? null : {
    stages: parts.flatMap((p) => p.stages).sort((a, b) => a.stage - b.stage),
    buffers: Object.assign({}, ...parts.map((p) => p.buffers)) as Record<string, Float32Array>,
  };
}

/** The checkpoint parts: JSON for metadata extra.async and tensors for CheckpointInput.extraTensors. */
export function asyncCheckpointParts(state: AsyncState | null): { meta: { stages: AsyncStageMeta[] } | null; tensors: Map<string, Tensor> } {
  const tensors = new Map<string, Tensor>();
  if (!state) return { meta: null, tensors };
  for (const [key, data] of Object.entries(state.buffers)) tensors.set(ASYNC_TENSOR_PREFIX + key, new Tensor(data.slice(), [data.length]));
  return { meta: { stages: state.stages }, tensors };
}

/**
 * The state a checkpoint saved with asyncCheckpointParts, or undefined when it has none (saved before
 * this existed, or during a synchronous warm-up): the run then starts its asynchronous state from
 * zero. `meta` is metadata extra.async, `tensors` the checkpoint's extra tensors.
 */
export function asyncStateFromCheckpoint(meta: unknown, tensors: ReadonlyMap<string, Tensor>, stages: number): AsyncState | undefined {
  if (meta === undefined || meta === null) return undefined;
  const bad = (what: string): Error => new Error(`checkpoint async state: ${what}`);
  const list = (meta as { stages?: unknown }).stages;
  if (typeof meta !== "object" || !Array.isArray(list)) throw bad(`expected {stages: [...]}, got ${JSON.stringify(meta)}`);
  const metas = list.map((raw): AsyncStageMeta => {
    const st = raw as Partial<AsyncStageMeta>;
    if (!Number.isInteger(st.stage) || st.stage! < 0 || st.stage! >= stages) {
      throw bad(`stage ${JSON.stringify(st.stage)} does not exist in this run of ${stages} stages; resume with the same --stages`);
    }
    if (!Number.isInteger(st.steps) || st.steps! < 0) throw bad(`stage ${st.stage} steps must be a non-negative integer, got ${JSON.stringify(st.steps)}`);
    if (!POLICY_NAMES.includes(st.policy as PolicyName)) throw bad(`stage ${st.stage} policy ${JSON.stringify(st.policy)} is not one of ${POLICY_NAMES.join(", ")}`);
    if (!Array.isArray(st.buffers) || !st.buffers.every((b) => typeof b === "string")) throw bad(`stage ${st.stage} buffers must be a list of names`);
    return { stage: st.stage!, steps: st.steps!, policy: st.policy!, buffers: st.buffers };
  });
  const buffers: Record<string, Float32Array> = {};
  for (const [key, t] of tensors) if (key.startsWith(ASYNC_TENSOR_PREFIX)) buffers[key.slice(ASYNC_TENSOR_PREFIX.length)] = t.data;
  return { stages: metas, buffers };
}

/** The start-of-run line of a resumed asynchronous run whose stages now use `policy`. */
export function describeAsyncResume(state: AsyncState | undefined, policy: PolicyName): string {
  if (!state) return "asynchronous state from zero (the checkpoint has none: saved during the warm-up or by an older build)";
  const ks = [...new Set(state.stages.map((s) => s.steps))];
  const kept = state.stages.filter((s) => s.policy === policy);
  const bufs = [...new Set(kept.flatMap((s) => s.buffers))];
  const dropped = [...new Set(state.stages.filter((s) => s.policy !== policy).map((s) => s.policy))];
  return `asynchronous state resumed: ${ks.join("/")} asynchronous step(s) per stage (T1's k), policy buffers ${bufs.join(", ") || "none"}` +
    (dropped.length ? ` (buffers saved by ${dropped.join(", ")} start from zero under ${policy})` : "");
}
