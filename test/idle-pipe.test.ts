// An idle pipeline never keeps the process alive: a script that trains on the threads executor and
// forgets pipe.close() still exits by itself, after its steps completed normally.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("./lib-idle-pipe-script.js", import.meta.url));
const LIMIT_MS = 60_000;

test("a threads pipeline without close() lets the process exit once its steps are done", () => {
  const started = Date.now();
  const r = spawnSync(process.execPath, [SCRIPT], { encoding: "utf8", timeout: LIMIT_MS, killSignal: "SIGKILL" });
  const took = Date.now() - started;
  assert.notEqual(r.signal, "SIGKILL", `the process was still alive after ${LIMIT_MS} ms (killed); stdout: ${r.stdout} stderr: ${r.stderr}`);
  assert.equal(r.status, 0, `exit ${r.status}; stderr: ${r.stderr}`);
  // The steps ran to the end (a process that left early would print nothing).
  assert.match(r.stdout, /"losses"/, `the process ended before its steps completed (stdout: '${r.stdout}', stderr: '${r.stderr}')`);
  const out = JSON.parse(r.stdout.trim()) as { losses: number[]; weights: number };
  assert.equal(out.losses.length, 2);
  assert.ok(out.losses.every(Number.isFinite), JSON.stringify(out.losses));
  assert.ok(out.losses[1] < out.losses[0], `the second step trained on the first: ${JSON.stringify(out.losses)}`);
  assert.equal(out.weights, 4);
  assert.ok(took < LIMIT_MS);
});
