// `pipewright train --backend webgpu` on a machine without the webgpu package or without an adapter
// (simulated through a test seam preloaded into the CLI process): it exits with one line naming what
// to install, before any training.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { NO_ADAPTER, NO_PACKAGE } from "../src/backend/webgpu/messages.js";
import { WEBGPU_SEAM_NODE_OPTIONS } from "./webgpu-seam-preload.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

for (const [simulate, reason] of [["no-package", NO_PACKAGE], ["no-adapter", NO_ADAPTER]]) {
  test(`train --backend webgpu with ${simulate}: one line naming what is missing`, () => {
    const r = spawnSync(process.execPath, [MAIN, "train", "--model", "mlp", "--backend", "webgpu", "--epochs", "1", "--limit", "8"],
      { encoding: "utf8", timeout: 60_000, env: { ...process.env, PIPEWRIGHT_TEST_WEBGPU: simulate,
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} ${WEBGPU_SEAM_NODE_OPTIONS}`.trim() } });
    assert.notEqual(r.status, 0, "exit status");
    const lines = r.stderr.split("\n").filter((l) => l.includes("webgpu"));
    assert.deepEqual(lines, [`pipewright: webgpu backend unavailable: ${reason}`], r.stderr);
    assert.equal(r.stdout.includes("trained"), false, "no training ran");
  });
}
