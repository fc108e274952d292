// The worker-to-GPU map (--gpus N, --gpu-map LIST): parsing and validation, round-robin assignment,
// reading Dawn's adapter list, and on the machine's adapters (llvmpipe: one) that a map within range
// trains to the same bits as no map and is reported in the JSON summary, while an entry out of range
// ends the run with one line naming it and the count of adapters found. The end-to-end cases skip,
// saying why, where no WebGPU adapter opens.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { setBackend } from "../src/backend/index.js";
import { resolveOptions, type PipelineOptions } from "../src/api/options.js";
import { checkGpuMap, GPU_MAP_ENV, gpuOfWorker, gpusMap, parseAdapterList, parseGpuMap } from "../src/backend/webgpu/gpu-map.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

test("--gpus N is 0..N-1; --gpu-map parses indices; bad values name themselves", () => {
  assert.deepEqual(gpusMap(3), [0, 1, 2]);
  assert.throws(() => gpusMap(0), /--gpus 0: must be a positive integer/);
  assert.throws(() => gpusMap(1.5), /--gpus 1.5: must be a positive integer/);
  assert.deepEqual(parseGpuMap("0,1, 0,1"), [0, 1, 0, 1]);
  assert.throws(() => parseGpuMap("0,-1"), /--gpu-map '0,-1': entry '-1' is not a non-negative integer adapter index/);
  assert.throws(() => parseGpuMap("0,,1"), /entry '' is not/);
});

test("workers are assigned round-robin: worker w opens map[w mod length]", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map((w) => gpuOfWorker(gpusMap(3), w)), [0, 1, 2, 0, 1, 2, 0]);
  assert.deepEqual([0, 1, 2, 3, 4].map((w) => gpuOfWorker([2, 0], w)), [2, 0, 2, 0, 2]);
});

test("a map entry beyond the adapters found is one line naming it and the count", () => {
  checkGpuMap([0, 1, 1], ["a", "b"]);
  assert.throws(() => checkGpuMap([0, 2], ["a", "b"]),
    (e: Error) => e.message === "GPU map 0,2 (--gpus/--gpu-map): adapter 2 is out of range: 2 WebGPU adapters found (0: a; 1: b)");
});

test("Dawn's adapter list is read from its no-match message", () => {
  const msg = "no adapter with backend 'vulkan' and name 'x' found\nAvailable adapters:\n * backend: 'vulkan', name: 'NVIDIA H200'\n" +
    " * backend: 'vulkan', name: 'llvmpipe (LLVM 15.0.6, 256 bits)'\n";
  assert.deepEqual(parseAdapterList(msg), ["NVIDIA H200", "llvmpipe (LLVM 15.0.6, 256 bits)"]);
  assert.deepEqual(parseAdapterList("no adapter found"), []);
});

test("createPipeline's gpus option: checked, and handed to the workers as the map", () => {
  const base: PipelineOptions = { model: { builtin: { name: "mlp" } }, stages: 2, microbatches: 2, optimizer: { name: "sgd", lr: 0.1 } };
  try {
    for (const bad of [0, 1.5, [], [0, -1]]) {
      assert.throws(() => resolveOptions({ ...base, gpus: bad }), new RegExp(`gpus must be a positive integer or a non-empty list of adapter indices \\(integers >= 0\\), got ${JSON.stringify(bad).replace(/[[\]]/g, "\\$&")}`));
    }
    resolveOptions({ ...base, gpus: 2 });
    assert.equal(process.env[GPU_MAP_ENV], "0,1");
    resolveOptions({ ...base, gpus: [1, 0, 1] });
    assert.equal(process.env[GPU_MAP_ENV], "1,0,1");
  } finally {
    delete process.env[GPU_MAP_ENV];
  }
});

let skip: string | false = false;
try {
  setBackend("webgpu");
} catch (e) {
  skip = `no WebGPU adapter: ${(e as Error).message}`;
}
const TRAIN = ["train", "--model", "mlp", "--data", "slice", "--limit", "96", "--epochs", "1", "--batch", "48", "--microbatches", "4",
  "--schedule", "1f1b", "--stages", "2", "--backend", "webgpu", "--executor", "threads", "--quiet", "--json"];
const train = (extra: string[]) => spawnSync(process.execPath, [MAIN, ...TRAIN, ...extra], { encoding: "utf8", timeout: 120_000 });

test("threads on webgpu with --gpu-map 0,0 (every worker on adapter 0) equal the run without a map, and report the map", { skip }, () => {
  const plain = train([]), mapped = train(["--gpu-map", "0,0"]);
  assert.equal(plain.status, 0, plain.stderr);
  assert.equal(mapped.status, 0, mapped.stderr);
  const a = JSON.parse(plain.stdout), b = JSON.parse(mapped.stdout);
  assert.deepEqual([b.train_loss, b.test_loss, b.test_acc], [a.train_loss, a.test_loss, a.test_acc]);
  assert.equal(a.gpu_map, undefined);
  assert.deepEqual(b.gpu_map.map, [0, 0]);
  assert.match(b.gpu_map.adapter, /\S/);
});

test("--gpus larger than the adapters found ends the run with one line", { skip }, () => {
  const r = train(["--gpus", "9"]);
  assert.equal(r.status, 1);
  const lines = r.stderr.split("\n").filter((l) => l.startsWith("pipewright:"));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^pipewright: webgpu backend unavailable: GPU map 0,1,2,3,4,5,6,7,8 \(--gpus\/--gpu-map\): adapter \d is out of range: \d+ WebGPU adapters? found \(0: /);
});

for (const command of [["train", "--model", "mlp", "--limit", "8"], ["bench", "pipeline"]]) {
  test(`${command.slice(0, 2).join(" ")}: --gpus needs --backend webgpu; a bad --gpu-map names its entry`, () => {
    const r = spawnSync(process.execPath, [MAIN, ...command, "--backend", "reference", "--gpus", "1"], { encoding: "utf8" });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--gpus\/--gpu-map choose WebGPU adapters: they need --backend webgpu \(the backend is reference\)/);
    const m = spawnSync(process.execPath, [MAIN, ...command, "--backend", "webgpu", "--gpu-map", "0,a"], { encoding: "utf8" });
    assert.equal(m.status, 2);
    assert.match(m.stderr, /--gpu-map '0,a': entry 'a' is not a non-negative integer adapter index/);
  });
}
