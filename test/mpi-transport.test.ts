// The MPI transport's pieces: rank layout (Megatron order), message frames, and, under mpirun, the
// fixed-order collectives: all-reduce equals reduceInOrder over every rank's buffer bit for bit on
// 2 and 3 ranks over shared memory and TCP on loopback, whatever MPI's own algorithms would pick.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { groupSplits, positionOf, rankOf, worldSize } from "../src/transport/mpi/layout.js";
import { frameHeader, parseFrame } from "../src/transport/mpi/frame.js";
import { launchEnv, notUnderMpiMessage } from "../src/transport/mpi/env.js";
import { loadMpiAddon, type MpiAddon } from "../src/transport/mpi/addon.js";
import { MpiTransport } from "../src/transport/mpi/transport.js";
import { MAIN } from "./mpi-helpers.js";
import { MPI_ENV, mpiSkipReason, mpirunArgs, type Btl } from "./mpi-helpers.js";

const skip = mpiSkipReason();
const PROBE = fileURLToPath(new URL("./mpi-allreduce-probe.js", import.meta.url));

test("rank layout: tensor innermost, then worker, then replica; group splits agree with it", () => {
  const l = { tensor: 2, workers: 3, replicas: 2 };
  assert.equal(worldSize(l), 12);
  for (let r = 0; r < 12; r++) assert.equal(rankOf(positionOf(r, l), l), r);
  assert.deepEqual(positionOf(7, l), { tensor: 1, worker: 0, replica: 1 });
  // Ranks of one pipeline share a color and are ordered by worker; a data group by replica.
  const pipe = [6, 8, 10].map((r) => groupSplits(r, l).pipeline);
  assert.deepEqual(pipe, [[2, 0], [2, 1], [2, 2]]);
  const data = [2, 8].map((r) => groupSplits(r, l).data);
  assert.deepEqual(data, [[2, 0], [2, 1]]);
  assert.throws(() => positionOf(12, l), /rank 12 is outside the job \(world size 12 = 2 x 3 x 2\)/);
});

test("frames: header and raw body round-trip, the body 8-byte aligned", () => {
  const body = Float32Array.of(1.5, -2, 3);
  const h = frameHeader({ key: "a1:3", kind: "tensor", shape: [1, 3] });
  const wire = new Uint8Array(h.length + body.byteLength);
  wire.set(h); wire.set(new Uint8Array(body.buffer), h.length);
  const f = parseFrame(wire.buffer);
  assert.deepEqual(f.header, { key: "a1:3", kind: "tensor", shape: [1, 3] });
  assert.equal(f.offset % 8, 0);
  assert.deepEqual([...new Float32Array(f.body, f.offset, f.bytes / 4)], [1.5, -2, 3]);
});

test("without the MPI addon (no Open MPI), loading it says what to install", () => {
  assert.throws(() => loadMpiAddon("/nonexistent/pipewright_mpi.node"),
    /MPI transport is not built .*apt-get install -y openmpi-bin libopenmpi-dev/);
});

test("--replicas with --executor inline trains the copies in one thread", () => {
  const r = spawnSync(process.execPath, [MAIN, "train", "--model", "mlp", "--data", "slice", "--limit", "64", "--schedule", "1f1b",
    "--stages", "2", "--microbatches", "2", "--replicas", "2", "--executor", "inline"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /trained +5 epochs, 5 steps/);
});

test("launch environment: Open MPI, PMIx and PMI variables; none outside MPI", () => {
  assert.equal(launchEnv({}), null);
  assert.deepEqual(launchEnv({ OMPI_COMM_WORLD_RANK: "3", OMPI_COMM_WORLD_SIZE: "4", OMPI_COMM_WORLD_LOCAL_RANK: "1", OMPI_COMM_WORLD_LOCAL_SIZE: "2" }),
    { rank: 3, size: 4, localRank: 1, localSize: 2 });
  assert.deepEqual(launchEnv({ PMIX_RANK: "2", SLURM_NTASKS: "8", SLURM_LOCALID: "0" }), { rank: 2, size: 8, localRank: 0, localSize: 0 });
  assert.match(notUnderMpiMessage(4), /pipewright launch -n 4 -- train/);
});

for (const [n, btl] of [[2, "vader"], [3, "vader"], [3, "tcp"]] as [number, Btl][]) {
  test(`fixed-order all-reduce == reduceInOrder bit for bit on ${n} ranks over ${btl}; broadcast, all-gather`, { skip }, () => {
    const r = spawnSync("mpirun", [...mpirunArgs(n, btl), process.execPath, PROBE], { encoding: "utf8", timeout: 60_000, env: { ...process.env, ...MPI_ENV } });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { size: number; threadLevel: string; mismatches: number; broadcast: number[]; gathered: number[] };
    assert.equal(out.size, n);
    assert.equal(out.mismatches, 0);
    assert.deepEqual(out.broadcast, [1, 2, 3]);
    assert.deepEqual(out.gathered, Array.from({ length: n }, (_, i) => i * 10));
  });
}

test("bench mpi runs on 2 ranks and reports the idle CPU row", { skip }, () => {
  const main = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  const r = spawnSync("mpirun", [...mpirunArgs(2, "vader"), process.execPath, main, "bench", "mpi", "--iters", "5", "--idle", "0.2", "--json"],
    { encoding: "utf8", timeout: 60_000, env: { ...process.env, ...MPI_ENV } });
  assert.equal(r.status, 0, `exit ${r.status} ${r.signal ?? ""}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const rows = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { bench: string; bytes: number; cpu_percent?: number });
  assert.deepEqual(rows.map((x) => `${x.bench}:${x.bytes}`), ["p2p:1024", "p2p:4194304", "allreduce:4194304", "idle-cpu:0"]);
  assert.ok(typeof rows[3].cpu_percent === "number");
});

type Polled = [number, number, number, ArrayBuffer, number];
/**
 * A stand-in addon: `event` delivers a completed message as the communication thread would, `poll`
 * queues messages for the next receive() (the JS thread polling).
 */
function fakeTransport(): { mpi: MpiTransport; event: Parameters<MpiAddon["init"]>[0]; poll(m: Polled[]): void } {
  let onEvent: Parameters<MpiAddon["init"]>[0] = () => {};
  let polled: Polled[] = [];
  const nop = (): void => {};
  const fake = {
    init: (cb: typeof onEvent) => { onEvent = cb; return { rank: 0, size: 2, threadLevel: "multiple" }; },
    send: nop, progress: nop, setJsState: nop, listen: nop, split: nop, barrier: nop, finalize: nop,
    commInfo: () => ({ rank: 0, size: 2 }), abort: () => { throw new Error("abort"); }, singleCopyWorks: () => true,
    receive: () => { const r = polled; polled = []; return r; },
  } as unknown as MpiAddon;
  const mpi = new MpiTransport(fake);
  return { mpi, event: (...a) => onEvent(...a), poll: (m) => { polled = m; } };
}

test("messages reach their handlers in the order they completed, whether through an event or through receive()", () => {
  // Messages complete with sequence numbers; some come as events, some from receive(), and may overtake.
  const { mpi, event: onEvent, poll } = fakeTransport();
  const got: number[] = [];
  mpi.listen(0, 1, (_src, data) => got.push(new Uint8Array(data)[0]));
  const msg = (v: number): ArrayBuffer => Uint8Array.of(v).buffer;
  onEvent("message", 0, 1, 1, msg(10), 0);
  poll([[0, 1, 1, msg(12), 2]]);
  mpi.receive(); // 2 overtook 1: held back
  assert.deepEqual(got, [10]);
  onEvent("message", 0, 1, 1, msg(11), 1); // 1 arrives: 1, then the held 2
  assert.deepEqual(got, [10, 11, 12]);
  poll([[0, 1, 1, msg(13), 3]]);
  mpi.receive();
  assert.deepEqual(got, [10, 11, 12, 13]);
});

test("a handler that waits inside receive() for the next message gets it (a pipeline message pumps a tensor-parallel rank whose collective polls)", () => {
  const { mpi, event: onEvent, poll } = fakeTransport();
  const parts: number[] = [];
  const order: string[] = [];
  // Tag 3 stands for the tensor group's collective parts, tag 1 for pipeline messages.
  mpi.listen(0, 3, (_src, data) => { parts.push(new Uint8Array(data)[0]); order.push("part"); });
  mpi.listen(0, 1, () => {
    order.push("pipe");
    // The action this message unblocks all-reduces: it polls until its peer's part is there.
    poll([[0, 1, 3, Uint8Array.of(7).buffer, 1]]);
    for (let i = 0; i < 3 && parts.length === 0; i++) mpi.receive();
    assert.deepEqual(parts, [7], "the part that completed after the pipeline message reaches the waiting handler");
  });
  onEvent("message", 0, 1, 1, new ArrayBuffer(1), 0);
  assert.deepEqual(order, ["pipe", "part"]);
  // Later messages still come in order.
  onEvent("message", 0, 1, 3, Uint8Array.of(8).buffer, 3);
  poll([[0, 1, 3, Uint8Array.of(9).buffer, 2]]);
  mpi.receive();
  assert.deepEqual(parts, [7, 9, 8]);
});
