// Two "hosts" on one machine: two network namespaces joined by veth pairs on a bridge with a test
// subnet, one or two ranks in each, launched by `pipewright launch --hostfile --iface SUBNET` with an
// rsh agent that enters the namespace and a UTS namespace of its own (so each "host" has its own
// host name: Open MPI keys shared-memory files by host name, and two ranks per host use them). A short training run crosses the bridge over TCP and must end
// with the inline executor's weights bit for bit. Everything created is deleted, also on failure.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCheckpoint } from "../src/checkpoint/index.js";
import { MAIN, MPI_ENV, mpiSkipReason } from "./mpi-helpers.js";

const id = process.pid % 10000;
const HOSTS = [`pw${id}a`, `pw${id}b`];
const BRIDGE = `pwbr${id}`;
const NET = `10.213.${20 + (process.pid % 200)}`;

function sh(cmd: string): { ok: boolean; out: string } {
  const r = spawnSync("/bin/sh", ["-c", cmd], { encoding: "utf8" });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

function skipReason(): string | false {
  const mpi = mpiSkipReason();
  if (mpi) return mpi;
  if (process.getuid?.() !== 0) return "network namespaces need root";
  const probe = `pwprobe${id}`;
  if (!sh(`ip netns add ${probe} && ip netns del ${probe}`).ok) return "cannot create network namespaces here (ip netns add failed)";
  return false;
}

function createHosts(): void {
  const steps = [`ip link add ${BRIDGE} type bridge`, `ip addr add ${NET}.254/24 dev ${BRIDGE}`, `ip link set ${BRIDGE} up`];
  HOSTS.forEach((h, i) => {
    steps.push(`ip netns add ${h}`, `ip link add v${h} type veth peer name eth0 netns ${h}`, `ip link set v${h} master ${BRIDGE} up`,
      `ip -n ${h} addr add ${NET}.${i + 1}/24 dev eth0`, `ip -n ${h} link set eth0 up`, `ip -n ${h} link set lo up`);
    mkdirSync(`/etc/netns/${h}`, { recursive: true });
    writeFileSync(`/etc/netns/${h}/hosts`, `127.0.0.1 localhost\n${HOSTS.map((x, j) => `${NET}.${j + 1} ${x}`).join("\n")}\n`);
  });
  for (const s of steps) { const r = sh(s); if (!r.ok) throw new Error(`${s}: ${r.out}`); }
}

function deleteHosts(): void {
  for (const h of HOSTS) { sh(`ip netns del ${h}`); sh(`ip link del v${h}`); rmSync(`/etc/netns/${h}`, { recursive: true, force: true }); }
  sh(`ip link del ${BRIDGE}`);
}

/** Bytes sent by a namespace's eth0 (the traffic that crossed the bridge). */
function txBytes(h: string): number {
  return Number(sh(`ip netns exec ${h} cat /sys/class/net/eth0/statistics/tx_bytes`).out.trim());
}

for (const perHost of [1, 2]) test(`2 hosts (network namespaces) x ${perHost} rank(s): TCP across the bridge, weights bit for bit as inline`, { skip: skipReason() }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), "pw-hosts-"));
  try {
    createHosts();
    const agent = join(dir, "agent");
    writeFileSync(agent, `#!/bin/sh\nns="$1"; shift\nexec ip netns exec "$ns" unshare --uts /bin/sh -c "hostname $ns; $*"\n`);
    chmodSync(agent, 0o755);
    const hostfile = join(dir, "hosts");
    writeFileSync(hostfile, HOSTS.map((h) => `${h} slots=${perHost}`).join("\n") + "\n");
    const train = ["train", "--model", "mlp", "--data", "slice", "--limit", "192", "--epochs", "1", "--batch", "48", "--microbatches", "4",
      "--schedule", "1f1b", "--stages", String(2 * perHost), "--quiet", "--json"];
    const ref = join(dir, "ref.safetensors"), ck = join(dir, "ck.safetensors");
    const r = spawnSync(process.execPath, [MAIN, ...train, "--executor", "inline", "--save", ref], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const before = HOSTS.map(txBytes);
    const p = spawnSync(process.execPath, [MAIN, "launch", "-n", String(2 * perHost), "--hostfile", hostfile, "--iface", `${NET}.0/24`,
      `--mpirun-args=--mca plm_rsh_agent ${agent} --mca plm_rsh_no_tree_spawn 1`, "--", ...train, "--save", ck],
    { encoding: "utf8", timeout: 120_000, env: { ...process.env, ...MPI_ENV } });
    assert.equal(p.status, 0, p.stderr);
    const sent = HOSTS.map((h, i) => txBytes(h) - before[i]);
    t.diagnostic(`bytes sent over the bridge: ${sent.join(", ")}`);
    // Activations (rank 0 -> 1) and gradients (1 -> 0) of 16 micro-batches of 12 x 256 floats at least.
    for (const s of sent) assert.ok(s > 16 * 12 * 256 * 4, `too little traffic crossed the bridge: ${sent.join(", ")}`);
    const a = loadCheckpoint(ref), b = loadCheckpoint(ck);
    for (const [k, x] of a.model) assert.deepEqual(Buffer.from(b.model.get(k)!.data.buffer), Buffer.from(x.data.buffer), `weights ${k} differ`);
  } finally {
    deleteHosts();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(sh(`ip netns list | grep -c ${HOSTS[0]}`).out.trim(), "0", "a namespace was left behind");
});
