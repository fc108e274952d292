// A pipeline worker thread: rebuilds the model from its source (a built-in spec + seed, or the
// user's module, imported here), loads its units' share of the main thread's state, keeps only its
// stages, and runs its action list each step. Activations and gradients go
// straight to the neighbour workers over MessageChannels; their buffers are transferred, not cloned.
// With replicas, its REDUCEs sum the stage's gradients (and BatchNorm moments) with the same worker
// of the other replicas in shared memory. Any error is reported to the main thread with the stage and action, which then
// ends the run.
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import { getHeapStatistics } from "node:v8";
import { setBackend } from "../../backend/index.js";
import { loadNativeAddon } from "../../backend/native.js";
import { PipelineActionError, type Payload } from "./interpreter.js";
import { ShmCollectives } from "../../transport/shm-collectives.js";
import { reduceStage } from "./replica-reduce.js";
import type { FromWorker, PeerMessage, ToWorker, WorkerInit } from "./messages.js";
import { toPlain } from "../../optim/index.js";
import { buildWorker, type BuiltWorker } from "./worker-build.js";
import { syncNormGroup } from "./grad-clip.js";
import { memoryBytes, memoryRecord } from "./memory.js";
import { WorkerLoop } from "./worker-loop.js";
import { entryTensors, stageEntries, stageOptimizerStates } from "./worker-state.js";
import { hostMemory } from "../../tensor/host-arrays.js";
import { forwardOnlyLists } from "../schedule/forward-only.js";
import { epochNow, MessageLog, onEpoch, payloadBytes, type RankTimings } from "./action-records.js";

const init = workerData as WorkerInit;
const port = parentPort!;
/** This thread's id (the main thread's index of it). */
const id = (init.replica * init.setup.schedule.workers.length + init.worker) * (init.setup.tensorParallel?.size ?? 1) + init.tensor;
const post = (m: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

/** A buffer can be moved only if the array spans all of it. */
function ownsBuffer(a: Float32Array | Int32Array): boolean {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.buffer instanceof ArrayBuffer;
}

function fail(e: unknown): void {
  failed = true;
  loop?.stop();
  const err = e instanceof Error ? e : new Error(String(e)), a = err instanceof PipelineActionError ? err : null;
  post({ type: "error", worker: id, stage: a?.stage ?? null, action: a?.action ?? null, message: a?.causeMessage ?? err.message, stack: a ? a.causeStack : err.stack });
}

let built: BuiltWorker;
let loop: WorkerLoop;
let failed = false;
let peakBytes = 0;
/**
 * recordActions: this thread's messages, from the end of one list to the end of the next (a
 * neighbour's first message of a step may arrive before the step's own message from the main thread).
 */
const log = init.setup.instrumentation?.recordActions ? new MessageLog() : null;
/** When the running list's message from the main thread arrived, and whether it is a training step. */
let begin = 0;
let stepList = false;

/**
 * This thread's own memory: its isolate's JS heap plus external memory (the ArrayBuffers holding
 * its tensors). Threads share one process RSS; this is the part that is this worker's.
 */
function sampleMemory(): void {
  const h = getHeapStatistics();
  peakBytes = Math.max(peakBytes, h.used_heap_size + h.external_memory);
}

/** Posts the finished list's results to the main thread. */
function finished(): void {
  const b = built.interp.busy;
  const { metrics, outputs } = built.results.take();
  const { prepared, seconds: prepSeconds } = built.inputHook.take();
  const messages = log?.take();
  const end = epochNow();
  const timings: RankTimings | undefined = messages && stepList
    ? { rank: id, worker: init.worker, replica: init.replica, actions: onEpoch(built.interp.records), ...messages, begin, listDone: end, end } : undefined;
  if (log) log.paused = false;
  post({ type: "done", worker: id, metrics, busy: { ...b, F: b.F + prepSeconds }, seconds: (end - begin) / 1000, peaks: [...built.interp.peakLive], peakBytes, outputs,
    memory: memoryRecord(init.setup.schedule, init, memoryBytes(built.interp)),
    ...(timings ? { timings } : {}), ...(init.setup.gradientNorms ? { gradSquares: built.takeGradSquares() } : {}), ...(prepared.length ? { prepared } : {}) },
  [...outputs, ...prepared].map((o) => o.data.buffer as ArrayBuffer));
}

try {
  setBackend(init.backend, id);
  const peers = init.peers as Record<number, MessagePort>;
  const outbox = {
    send(to: number, key: string, payload: Payload, transferable: boolean): void {
      const peer = peers[to];
      if (!peer) throw new Error(`worker ${init.worker} has no channel to worker ${to}`);
      const t0 = log ? epochNow() : 0, bytes = log ? payloadBytes(payload) : 0; // read before a transfer detaches the buffer
      if (payload.kind === "tensor") {
        // Move the buffer; copy first (once, into a buffer of its own) if this stage still uses it.
        // Device-backed arrays (webgpu) come back to host memory first: only plain memory can be posted.
        const host = hostMemory(payload.data);
        const data = transferable && ownsBuffer(host) ? host : host.slice();
        peer.postMessage({ key, payload: { ...payload, data } } satisfies PeerMessage, [data.buffer as ArrayBuffer]);
      } else peer.postMessage({ key, payload } satisfies PeerMessage);
      log?.send(key, bytes, t0);
    },
  };
  const comm = init.group ? new ShmCollectives(init.group, init.replica, { timeoutMs: init.reduceTimeoutMs }) : null;
  built = await buildWorker(init.setup, init.worker, { share: { units: init.units ?? null, entries: init.state } }, outbox,
    {
      ...(comm ? { reduce: (ps) => { reduceStage(ps, (buf) => comm.allReduceSync(buf, "sum")); } } : {}),
      ...(init.tensorGroup ? { tensor: new ShmCollectives(init.tensorGroup, init.tensor, { timeoutMs: init.reduceTimeoutMs }) } : {}),
      ...(init.normGroup ? { norm: syncNormGroup(new ShmCollectives(init.normGroup, init.worker * (init.setup.tensorParallel?.size ?? 1) + init.tensor, { timeoutMs: init.reduceTimeoutMs })) } : {}),
    });
  init.state = []; // the copy of the state is not needed any more
  // Memory is sampled around each burst of actions: activations peak inside a step.
  loop = new WorkerLoop(built.interp, { finished, fail, beforePump: sampleMemory, afterPump: sampleMemory });
  for (const [w, p] of Object.entries(peers)) {
    p.on("messageerror", (e: Error) => { fail(new Error(`a message from worker ${w} could not be read: ${e.message}`)); });
    p.on("message", (m: PeerMessage) => {
      if (failed) return;
      const t0 = log ? epochNow() : 0;
      try { built.interp.deliver(m.key, m.payload); } catch (e) { fail(e); return; }
      log?.receive(m.key, payloadBytes(m.payload), t0);
      loop.pump();
    });
  }
  port.on("message", (m: ToWorker) => {
    try {
      if (m.type === "step" || m.type === "forward") {
        for (const [key, payload] of m.deliveries) built.interp.deliver(key, m.type === "step" ? built.inputHook.apply(payload) : built.inputHook.forward(payload));
        if (m.type === "step") built.interp.reset(m.lrFactors);
        else built.interp.reset([1], forwardOnlyLists(init.setup.schedule, m.count)[init.worker], m.mode);
        begin = epochNow();
        stepList = m.type === "step";
        // Evaluation messages are not part of any step's record (they are dropped at its end).
        if (log && !stepList) log.paused = true;
        loop.start();
      } else if (m.type === "state") {
        const entries = stageEntries(built.interp.stages.values());
        post({ type: "state", worker: id, entries, plan: built.plan }, entries.map((e) => e[1].buffer as ArrayBuffer));
      } else if (m.type === "load") {
        built.load(entryTensors(m.entries));
        post({ type: "loaded", worker: id });
      } else if (m.type === "optimizer") {
        post({ type: "optimizer", worker: id, states: stageOptimizerStates(built.interp.stages.values()).map(toPlain), plan: built.plan });
      } else if (m.type === "async-state") {
        post({ type: "async-state", worker: id, state: built.asyncRuntime?.snapshot() ?? null });
      } else if (m.type === "close") {
        for (const p of Object.values(peers)) p.close();
        port.close();
      }
    } catch (e) {
      fail(e);
    }
  });
  post({ type: "ready", worker: id, ompThreads: init.backend === "native" ? loadNativeAddon().ompMaxThreads() : null });
} catch (e) {
  fail(e);
}
