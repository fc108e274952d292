// Transport: the rank-ordered reduction against an independent oracle; shared-memory and
// point-to-point collectives on real threads give the oracle's bits on every rank, whatever the
// arrival order (random per-rank delays), in buffers larger than a slot; a failing rank stops its
// peers (abort) or they time out, never hang; MessagePort channels match by tag and move buffers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MessageChannel } from "node:worker_threads";
import { PortChannel, partOf, reduceInOrder, TransportAbortedError } from "../src/transport/index.js";
import { runProbe, type ProbeMode, type ProbeOp } from "../src/transport/probe.js";
import { Rng } from "../src/tensor/random.js";
import { loadNative, setBackend, useBackend } from "../src/backend/index.js";

function randomData(rng: Rng, n: number): Float32Array {
  // Mixed magnitudes so that the summation order visibly matters in float32.
  return Float32Array.from({ length: n }, () => (rng.uniform() - 0.5) * 10 ** Math.floor(rng.uniform() * 6 - 3));
}

/** Independent oracle: float32 sum in rank order (each add rounded), then / R rounded for "mean". */
function oracle(inputs: Float32Array[], op: "sum" | "mean"): Float32Array {
  return Float32Array.from(inputs[0], (_, i) => {
    const s = inputs.slice(1).reduce((acc, a) => Math.fround(acc + a[i]), inputs[0][i]);
    return op === "mean" ? Math.fround(s / inputs.length) : s;
  });
}

function reduceCase(rng: Rng, n: number, backend: string): void {
  for (const R of [1, 2, 3, 4, 5]) {
    const inputs = Array.from({ length: R }, () => randomData(rng, n));
    for (const op of ["sum", "mean"] as const) {
      const want = oracle(inputs, op);
      const out = new Float32Array(n);
      // Reduced in R parts, as the ranks do.
      for (let r = 0; r < R; r++) { const [a, b] = partOf(n, r, R); reduceInOrder(inputs, out, a, b, op); }
      assert.deepEqual(out, want, `${backend} n=${n} R=${R} ${op}`);
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms (hang)`)), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

test("reduceInOrder: float32 sum in rank order, for every group size and any split, on both backends", () => {
  const rng = new Rng(5);
  const prev = useBackend(null);
  try {
    for (const backend of ["reference", ...(loadNative() ? ["native" as const] : [])] as const) {
      setBackend(backend);
      // 12000 elements: the native path (>= 2048 per part) and the loop (small parts) both run.
      for (const n of [101, 12000]) reduceCase(rng, n, backend);
    }
  } finally {
    useBackend(prev);
  }

  // partOf covers [0, n) exactly, contiguously.
  for (const [n, R] of [[0, 3], [1, 3], [10, 3], [7, 7]]) {
    let next = 0;
    for (let r = 0; r < R; r++) { const [a, b] = partOf(n, r, R); assert.equal(a, next); assert.ok(b >= a); next = b; }
    assert.equal(next, n);
  }
});

test("all-reduce and broadcast on 2 and 3 threads: oracle bits on every rank, independent of timing and transport", async () => {
  const rng = new Rng(11);
  const n = 2500; // capacity 1000 below: three pieces per collective
  for (const R of [2, 3]) {
    const inputs = Array.from({ length: R }, () => randomData(rng, n));
    // Entries where the order shows: (1e30 + -1e30) + 1 = 1 but (1 + -1e30) + 1e30 = 0.
    if (R >= 3) for (const k of [7, 1500, 2499]) { inputs[0][k] = 1e30; inputs[1][k] = -1e30; inputs[2][k] = 1; }
    const modes: ProbeMode[] = ["sync", "async", "p2p"];
    const scripts: ProbeOp[][] = Array.from({ length: R }, (_, r) => [
      ...modes.flatMap((mode): ProbeOp[] => [
        // Different ranks arrive last in different ops.
        { op: "allReduce", data: inputs[r], reduce: "sum", mode, delayMs: r === 0 ? 30 : 0 },
        { op: "allReduce", data: inputs[r], reduce: "sum", mode, delayMs: r === R - 1 ? 30 : 0 },
        { op: "allReduce", data: inputs[r], reduce: "mean", mode, delayMs: 5 * r },
        { op: "broadcast", data: inputs[r], root: R - 1, mode, delayMs: r === R - 1 ? 20 : 0 },
      ]),
    ]);
    const results = await withTimeout(runProbe(scripts, { capacity: 1000 }), 20_000, `probe R=${R}`);
    const sum = oracle(inputs, "sum"), mean = oracle(inputs, "mean");
    for (const res of results) {
      assert.equal(res.type, "results", res.type === "error" ? res.message : "");
      if (res.type !== "results") continue;
      for (let m = 0; m < modes.length; m++) {
        const o: Float32Array[] = res.outputs.slice(4 * m, 4 * m + 4);
        assert.deepEqual(o[0], sum, `R=${R} rank ${res.rank} ${modes[m]} sum`);
        assert.deepEqual(o[1], sum, `R=${R} rank ${res.rank} ${modes[m]} sum, other arrival order`);
        assert.deepEqual(o[2], mean, `R=${R} rank ${res.rank} ${modes[m]} mean`);
        assert.deepEqual(o[3], inputs[R - 1], `R=${R} rank ${res.rank} ${modes[m]} broadcast`);
      }
    }
    if (R === 3) assert.equal(sum[7], 1, "the planted entry sums to 1 in rank order");
  }
});

test("a rank that fails and aborts the group stops its peers with TransportAbortedError within seconds", async () => {
  const data = new Float32Array(10).fill(1);
  const t0 = performance.now();
  const results = await withTimeout(runProbe([
    [{ op: "throw", message: "rank 0 broke", abort: true }],
    [{ op: "allReduce", data, reduce: "sum", mode: "sync", delayMs: 0 }],
    [{ op: "allReduce", data, reduce: "sum", mode: "async", delayMs: 0 }],
  ], { timeoutMs: 60_000 }), 10_000, "abort probe");
  assert.ok(performance.now() - t0 < 10_000);
  assert.equal(results[0].type, "error");
  assert.match(results[0].type === "error" ? results[0].message : "", /rank 0 broke/);
  for (const r of results.slice(1)) {
    assert.equal(r.type, "error");
    if (r.type === "error") {
      assert.equal(r.name, "TransportAbortedError");
      assert.match(r.message, /aborted by rank 0/);
    }
  }
});

test("a rank that never arrives makes its peers time out instead of hanging", async () => {
  const data = new Float32Array(10).fill(1);
  const results = await withTimeout(runProbe([
    [{ op: "throw", message: "silent death", abort: false }],
    [{ op: "allReduce", data, reduce: "sum", mode: "sync", delayMs: 0 }],
  ], { timeoutMs: 300 }), 10_000, "timeout probe");
  assert.equal(results[1].type, "error");
  if (results[1].type === "error") {
    assert.equal(results[1].name, "TransportTimeoutError");
    assert.match(results[1].message, /rank 1: allReduce timed out after 300 ms/);
  }
});

test("PortChannel: messages match by (sender, tag) in FIFO order; transfer moves, shared memory is shared", async () => {
  const ch = new MessageChannel();
  const a = new PortChannel(0, 2, { 1: ch.port1 });
  const b = new PortChannel(1, 2, { 0: ch.port2 });
  try {
    a.send(1, "x", Float32Array.of(1));
    a.send(1, "y", Float32Array.of(2));
    a.send(1, "x", Float32Array.of(3));
    assert.deepEqual(await b.recv(0, "y"), Float32Array.of(2));
    assert.deepEqual(await b.recv(0, "x"), Float32Array.of(1));
    assert.deepEqual(await b.recv(0, "x"), Float32Array.of(3));
    // Transfer: the sender's array is detached (moved, not copied).
    const moved = new Float32Array(1024).fill(7);
    b.send(0, "m", moved, true);
    assert.equal(moved.length, 0);
    assert.equal((await a.recv(1, "m"))[1023], 7);
    // SharedArrayBuffer-backed: the receiver sees the same memory.
    const shared = new Float32Array(new SharedArrayBuffer(16));
    a.send(1, "s", shared);
    const got = await b.recv(0, "s");
    shared[2] = 42;
    assert.equal(got[2], 42);
    // Bad ranks are named.
    assert.throws(() => a.send(5, "x", Float32Array.of(1)), /rank 5 is not in the group; valid: 0..1/);
  } finally {
    a.close();
    b.close();
  }
});

test("TransportAbortedError names who aborted", () => {
  assert.match(new TransportAbortedError(2, 0).message, /rank 2: collective aborted by rank 0/);
  assert.match(new TransportAbortedError(1, -1).message, /by the coordinator/);
});

test("PortChannel: close() rejects a receive still waiting instead of leaving it pending forever", async () => {
  const ch = new MessageChannel();
  const a = new PortChannel(0, 2, { 1: ch.port1 });
  const b = new PortChannel(1, 2, { 0: ch.port2 });
  const pending = b.recv(0, "never");
  b.close();
  a.close();
  await assert.rejects(pending, /channel closed while waiting to receive '0:never'/);
  await assert.rejects(b.recv(0, "x"), /recv on a closed channel/);
});
