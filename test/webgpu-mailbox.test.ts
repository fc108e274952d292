// Device-resident webgpu arrays through the MPI control mailbox (the collectives' all-gather and
// broadcast of structured values): the serialiser cannot clone a Proxy, so the mailbox hands it the
// arrays' host memory. A stand-in addon echoes each send of rank 0 back as the same message from
// rank 1, so no mpirun is needed. Oracle: the reference backend computing the same kernels on plain
// arrays. Skips, saying why, where no WebGPU adapter opens.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { referenceBackend as ref } from "../src/backend/reference.js";
import { createWebGpuBackend, type WebGpuBackend } from "../src/backend/webgpu/backend.js";
import type { MpiAddon } from "../src/transport/mpi/addon.js";
import { ControlMailbox } from "../src/transport/mpi/mailbox.js";
import { MpiTransport } from "../src/transport/mpi/transport.js";
import { MpiCollectives } from "../src/transport/mpi/collectives.js";

let gpu: WebGpuBackend | null = null;
let skip: string | false = false;
try {
  gpu = createWebGpuBackend();
} catch (e) {
  skip = `no WebGPU adapter, skipping the webgpu mailbox test: ${(e as Error).message}`;
}
after(() => gpu?.close());

/** Rank 0 of 2, whose every send comes back from rank 1, header and body in one buffer. */
function loopback(): MpiTransport {
  let onEvent: Parameters<MpiAddon["init"]>[0] = () => {};
  let seq = 0;
  const nop = (): void => {};
  const fake = {
    init: (cb: typeof onEvent) => { onEvent = cb; return { rank: 0, size: 2, threadLevel: "multiple" }; },
    send: (comm: number, _dest: number, tag: number, header: Uint8Array, body?: ArrayBufferView) => {
      const bytes = body ? new Uint8Array(body.buffer, body.byteOffset, body.byteLength) : new Uint8Array(0);
      const wire = new Uint8Array(header.length + bytes.length);
      wire.set(header);
      wire.set(bytes, header.length);
      onEvent("message", comm, 1, tag, wire.buffer, seq++);
    },
    progress: nop, setJsState: nop, listen: nop, split: nop, barrier: nop, finalize: nop, receive: () => [],
    commInfo: () => ({ rank: 0, size: 2 }), abort: () => { throw new Error("abort"); }, singleCopyWorks: () => true,
  } as unknown as MpiAddon;
  return new MpiTransport(fake);
}

test("resident webgpu arrays inside a structured control message arrive with the device's values", { skip }, async () => {
  const be = gpu!;
  const box = new ControlMailbox(loopback(), 0);
  const x = Float32Array.from({ length: 37 }, (_, i) => i - 18);
  // Written by kernels, so the values are on the device only (the host copies are stale).
  const a = be.hostArrays!.alloc(37);
  const b = be.hostArrays!.alloc(37);
  be.affine(x, 2, 1, a);
  be.affine(a, -3, 0.5, b);
  const wantA = new Float32Array(37), wantB = new Float32Array(37);
  ref.affine(x, 2, 1, wantA);
  ref.affine(wantA, -3, 0.5, wantB);
  const ids = Int32Array.of(4, 5, 6);
  const value = { entries: [["w", a, [37]]], state: new Map([["m", b]]), ids, both: [a, a] };
  box.post(1, "k", value);
  const got = await box.take<typeof value>(1, "k");
  assert.deepEqual([...(got.entries[0][1] as Float32Array)], [...wantA]);
  assert.deepEqual([...got.state.get("m")!], [...wantB]);
  assert.deepEqual([...got.ids], [4, 5, 6]);
  assert.equal(got.both[0], got.both[1], "an array referenced twice arrives once, shared");
  // The sender's arrays still hold their values, and the next kernel on them sees those values.
  assert.deepEqual([...a], [...wantA]);
  const c = be.hostArrays!.alloc(37);
  be.affine(a, 1, 1, c);
  const wantC = new Float32Array(37);
  ref.affine(wantA, 1, 1, wantC);
  assert.deepEqual([...c], [...wantC]);
  // The same through the all-gather the processes executor uses for state entries; and a lone
  // resident array, which takes the raw-bytes path.
  const coll = new MpiCollectives(box);
  const [, echoed] = await coll.allGather([["w", b, [37]]]);
  assert.deepEqual([...(echoed[0][1] as Float32Array)], [...wantB]);
  const [, alone] = await coll.allGather(c);
  assert.deepEqual([...alone], [...wantC]);
});
