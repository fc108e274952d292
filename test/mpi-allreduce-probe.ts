// Run under mpirun by mpi-transport.test.ts: every rank all-reduces buffers that every rank can also
// build for itself (seeded by rank), and checks the result against reduceInOrder over all of them,
// bit for bit; broadcast and all-gather are checked too. Prints one JSON line on rank 0.
import { MpiCollectives } from "../src/transport/mpi/collectives.js";
import { ControlMailbox } from "../src/transport/mpi/mailbox.js";
import { mpiTransport } from "../src/transport/mpi/transport.js";
import { reduceInOrder } from "../src/transport/reduce.js";
import { Rng } from "../src/tensor/random.js";
import { launchEnv } from "../src/transport/mpi/env.js";

// The test runner also loads this file on its own (it runs every file under test/): then do nothing.
if (!launchEnv()) process.exit(0);

const bufferOf = (rank: number, n: number): Float32Array => {
  const rng = new Rng(1000 + rank);
  return Float32Array.from({ length: n }, () => rng.normal() * 10 ** (rng.int(7) - 3));
};

const mpi = mpiTransport();
const comm = await mpi.split(0, 0, mpi.rank);
const coll = new MpiCollectives(new ControlMailbox(mpi, comm));
let mismatches = 0;
for (const n of [1, 7, 1000, 100_003]) {
  const buf = bufferOf(mpi.rank, n);
  await coll.allReduce(buf, "sum");
  const expect = new Float32Array(n);
  reduceInOrder(Array.from({ length: mpi.size }, (_, r) => bufferOf(r, n)), expect, 0, n, "sum");
  if (!Buffer.from(buf.buffer).equals(Buffer.from(expect.buffer))) mismatches++;
}
const b = await coll.broadcast(mpi.rank === 1 ? { from: 1, data: Float32Array.of(1, 2, 3) } : undefined, 1);
const g = await coll.allGather(mpi.rank * 10);
await coll.barrier();
if (mpi.rank === 0) process.stdout.write(JSON.stringify({ size: mpi.size, threadLevel: mpi.threadLevel, mismatches, broadcast: [...b.data], gathered: g }) + "\n");
await mpi.finalize();
