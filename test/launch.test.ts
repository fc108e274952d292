// `pipewright launch`: the mpirun line it prints (loopback only when all ranks are local), its
// input errors (rank count against the pipeline, hostfile lines, remote hosts without --iface),
// and --max-restarts: a run whose rank is killed restarts from its last checkpoint and ends with
// the weights of an uninterrupted run, bit for bit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCheckpoint } from "../src/checkpoint/index.js";
import { parseHostfile } from "../src/transport/mpi/hostfile.js";
import { mpirunArgv } from "../src/transport/mpi/mpirun.js";
import { checkIface } from "../src/transport/mpi/iface.js";
import { killedRankLine } from "../src/cli/launch.js";
import { MAIN, MPI_ENV, mpiSkipReason, rankPids } from "./mpi-helpers.js";

const skip = mpiSkipReason();
const TRAIN = ["train", "--model", "mlp", "--data", "slice", "--limit", "192", "--batch", "48", "--microbatches", "4", "--schedule", "1f1b", "--stages", "2"];

const cli = (args: string[]): ReturnType<typeof spawnSync> =>
  spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8", env: { ...process.env, ...MPI_ENV } });

test("launch --dry-run: mpirun line with the rank count, loopback-only TCP, and --executor processes added", { skip }, () => {
  const r = cli(["launch", "-n", "2", "--dry-run", "--", ...TRAIN]);
  assert.equal(r.status, 0, String(r.stderr));
  const line = String(r.stdout);
  assert.match(line, /^mpirun -n 2 /);
  assert.match(line, /--mca btl self,vader /);
  assert.match(line, /--mca btl_tcp_if_include lo --mca oob_tcp_if_include lo/);
  assert.match(line, /train .* --executor processes\n$/);
});

test("launch: -n that is not workers x tensor ranks x replicas names all three numbers", () => {
  const r = cli(["launch", "-n", "3", "--", ...TRAIN]);
  assert.equal(r.status, 2);
  assert.match(String(r.stderr), /launch -n 3 does not match the pipeline: 2 worker\(s\) x 1 tensor rank\(s\) \(--tp\) x 1 replica\(s\) = 2 rank\(s\)/);
  const tp = cli(["launch", "-n", "4", "--", ...TRAIN, "--tp", "2", "--replicas", "2"]);
  assert.equal(tp.status, 2);
  assert.match(String(tp.stderr), /launch -n 4 does not match the pipeline: 2 worker\(s\) x 2 tensor rank\(s\) \(--tp\) x 2 replica\(s\) = 8 rank\(s\); use -n 8/);
});

test("hostfile: an unparsable line is reported with its number and text", () => {
  assert.throws(() => parseHostfile("# hosts\nnode1 slots=2\nnode2 slots=two\n", "hosts"),
    /hostfile hosts line 3: 'node2 slots=two' has 'slots=two'/);
  assert.deepEqual(parseHostfile("a slots=1\n\nb # comment\n", "h").map((h) => [h.host, h.slots, h.line]), [["a", 1, 1], ["b", null, 3]]);
});

test("mpirun line: remote hosts need --iface; with it, TCP is restricted to that interface", () => {
  const base = { ranks: 2, hostfile: "h", local: false, cores: 2, root: false, singleCopy: false, forward: [], program: ["node", "x"] };
  assert.throws(() => mpirunArgv(base), /give the job network with --iface/);
  const a = mpirunArgv({ ...base, iface: "10.9.0.0/24" }).join(" ");
  assert.match(a, /--mca btl self,vader,tcp --mca btl_tcp_if_include 10\.9\.0\.0\/24 --mca oob_tcp_if_include 10\.9\.0\.0\/24/);
  assert.doesNotMatch(a, /--oversubscribe/);
  assert.match(mpirunArgv({ ...base, local: true, ranks: 3 }).join(" "), /--oversubscribe --bind-to none/);
});

test("mpirun line: --bind core|none|socket is what mpirun gets; auto binds one core per rank unless oversubscribed", () => {
  const base = { ranks: 4, local: true, cores: 4, root: false, singleCopy: true, forward: [], program: ["node", "x"] };
  const bindTo = (a: string[]): string => a[a.indexOf("--bind-to") + 1];
  assert.equal(bindTo(mpirunArgv(base)), "core");
  assert.equal(bindTo(mpirunArgv({ ...base, ranks: 8 })), "none");
  for (const b of ["core", "none", "socket"] as const) assert.equal(bindTo(mpirunArgv({ ...base, bind: b })), b);
  assert.equal(bindTo(mpirunArgv({ ...base, ranks: 8, bind: "socket" })), "socket");
  assert.throws(() => mpirunArgv({ ...base, ranks: 8, bind: "core" }), /--bind core: 8 ranks on 4 cores would share cores/);
  // Single copy only where this host allows it; otherwise large messages go in fragments.
  assert.match(mpirunArgv(base).join(" "), /btl_vader_single_copy_mechanism cma/);
  assert.match(mpirunArgv({ ...base, singleCopy: false }).join(" "), /btl_vader_single_copy_mechanism none/);
});

test("launch --bind: the printed mpirun line shows the choice; a bad value names the allowed ones", { skip }, () => {
  for (const b of ["none", "socket", "core"]) {
    const r = cli(["launch", "-n", "2", "--bind", b, "--dry-run", "--", ...TRAIN]);
    assert.equal(r.status, 0, String(r.stderr));
    assert.match(String(r.stdout), new RegExp(` --bind-to ${b} `));
  }
  const bad = cli(["launch", "-n", "2", "--bind", "numa", "--dry-run", "--", ...TRAIN]);
  assert.equal(bad.status, 2);
  assert.match(String(bad.stderr), /numa/);
  assert.match(String(bad.stderr), /core, none, socket|core\|none\|socket/);
});

test("--iface: a malformed subnet or an interface this host lacks is rejected before mpirun, naming the value", () => {
  const ifs = {
    lo: [{ address: "127.0.0.1", netmask: "255.0.0.0", family: "IPv4" as const, mac: "00:00:00:00:00:00", internal: true, cidr: "127.0.0.1/8" }],
    eth0: [{ address: "10.9.0.5", netmask: "255.255.255.0", family: "IPv4" as const, mac: "02:00:00:00:00:01", internal: false, cidr: "10.9.0.5/24" }],
  };
  assert.equal(checkIface("eth0", ifs), "eth0");
  assert.equal(checkIface("10.9.0.0/24", ifs), "10.9.0.0/24");
  assert.equal(checkIface("10.0.0.0/8", ifs), "10.0.0.0/8");
  assert.throws(() => checkIface("300.1.1.1/99", ifs), /--iface 300\.1\.1\.1\/99: not an interface name or an IPv4 subnet/);
  assert.throws(() => checkIface("10.9.0.0/33", ifs), /not an interface name or an IPv4 subnet/);
  assert.throws(() => checkIface("10.9.0", ifs), /not an interface name or an IPv4 subnet/);
  assert.throws(() => checkIface("192.168.7.0/24", ifs), /no interface of this host has an address in that subnet; this host has lo \(127\.0\.0\.1\/8\), eth0 \(10\.9\.0\.5\/24\)/);
  assert.throws(() => checkIface("eth7", ifs), /--iface eth7: this host has no such interface; it has lo/);
});

test("launch --iface 300.1.1.1/99 exits 2 before running mpirun", { skip }, () => {
  const r = cli(["launch", "-n", "2", "--iface", "300.1.1.1/99", "--dry-run", "--", ...TRAIN]);
  assert.equal(r.status, 2);
  assert.match(String(r.stderr), /--iface 300\.1\.1\.1\/99: not an interface name/);
  assert.equal(String(r.stdout), "");
});

test("launch --max-restarts 1: a SIGKILLed rank restarts from the last checkpoint and ends bit for bit as an uninterrupted run", { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "pw-launch-"));
  try {
    const ref = join(dir, "ref.safetensors"), ck = join(dir, "ck.safetensors");
    const epochs = ["--epochs", "4"];
    const r = cli([...TRAIN, ...epochs, "--executor", "inline", "--quiet", "--save", ref]);
    assert.equal(r.status, 0, String(r.stderr));
    let killed = false, stderr = "";
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [MAIN, "launch", "-n", "2", "--max-restarts", "1", "--", ...TRAIN, ...epochs, "--save", ck],
        { env: { ...process.env, ...MPI_ENV } });
      let err = "";
      child.stderr.on("data", (d: Buffer) => {
        err += d.toString();
        if (killed || !/epoch 2\/4/.test(err)) return;
        const mpirun = Number(spawnSync("pgrep", ["-P", String(child.pid)], { encoding: "utf8" }).stdout.trim().split("\n")[0]);
        const victim = rankPids(mpirun).get(1);
        if (victim === undefined) return;
        killed = true;
        process.kill(victim, "SIGKILL");
      });
      const timer = setTimeout(() => child.kill("SIGKILL"), 180_000);
      child.on("close", (c) => { clearTimeout(timer); t.diagnostic(err.split("\n").filter((l) => /launch:/.test(l)).join(" | ")); resolve(c); stderr = err; });
    });
    assert.ok(killed, "rank 1 was never killed");
    assert.match(stderr, /pipewright launch: rank 1 \(pipeline worker 1\) on \S+ was killed by signal 9/);
    assert.equal(code, 0);
    const a = loadCheckpoint(ref), b = loadCheckpoint(ck);
    assert.equal(b.epoch, 4);
    for (const [k, x] of a.model) assert.deepEqual(Buffer.from(b.model.get(k)!.data.buffer), Buffer.from(x.data.buffer), `weights ${k} differ`);
    assert.equal(JSON.stringify(b.optimizer), JSON.stringify(a.optimizer));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("launch names a rank that mpirun reports killed by a signal, with its place in the pipeline", () => {
  const report = "--------------------------------------------------------------------------\n" +
    "mpirun noticed that process rank 3 with PID 0 on node vm exited on signal 9 (Killed).\n" +
    "--------------------------------------------------------------------------\n";
  assert.equal(killedRankLine(report, 2), "pipewright launch: rank 3 (pipeline worker 1, replica 1) on vm was killed by signal 9 (Killed)");
  // With --tp 2 rank 3 is tensor rank 1 of worker 1 (tensor ranks innermost).
  assert.equal(killedRankLine(report, 2, 2), "pipewright launch: rank 3 (pipeline worker 1, tensor rank 1) on vm was killed by signal 9 (Killed)");
  assert.equal(killedRankLine(report), "pipewright launch: rank 3 on vm was killed by signal 9 (Killed)");
  assert.equal(killedRankLine("mpirun detected that one or more processes exited with non-zero status"), null);
});

test("launch: the command after -- is required", () => {
  const r = cli(["launch", "-n", "2"]);
  assert.equal(r.status, 2);
  assert.match(String(r.stderr), /give the command after --/);
});
