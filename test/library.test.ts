// The library's pipeline object: a user-defined model and loss through createPipeline
// equal single-device training (the oracle: the same user model trained with the autograd engine
// and SGD, written out here) within 1e-5 for every synchronous schedule; threads equal inline bit
// for bit; bad inputs fail with messages naming the problem.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { backward } from "../src/autograd/engine.js";
import { createPipeline, SGD, Sequential, Tensor, type ModuleModel, type PipelineOptions, type ScheduleName } from "../src/index.js";
import { buildMlp, regressionBatches, userMse, type MlpArgs } from "./lib-user-model.js";
import type * as UserModel from "./lib-user-model.js";
import { generateSchedule, parseAction, type Schedule } from "../src/schedules.js";

const MODULE = new URL("./lib-user-model.js", import.meta.url).href;
const ARGS: MlpArgs = { sizes: [6, 10, 10, 10, 2], seed: 5 }; // 7 units
const N = 12, STEPS = 3;
const OPT = { name: "sgd", lr: 0.05, momentum: 0.9 } as const;

const batches = (): { x: Tensor; y: Tensor }[] => regressionBatches(N * STEPS, N);

/** Single-device oracle: the same user model, full mini-batch, mean loss, SGD. */
function singleDevice(): Map<string, Tensor> {
  const model = new Sequential(buildMlp(ARGS));
  const opt = new SGD(model.namedParameters(), { lr: OPT.lr, momentum: OPT.momentum });
  for (const b of batches()) {
    opt.zeroGrad();
    backward(userMse(model.forward(b.x), b.y));
    opt.step();
  }
  return model.stateDict();
}

async function train(o: Partial<PipelineOptions>): Promise<{ state: Map<string, Tensor>; losses: number[] }> {
  const pipe = await createPipeline({
    model: { module: MODULE, export: "buildMlp", args: { ...ARGS } }, loss: { module: MODULE, export: "userMse" },
    stages: 2, microbatches: 4, optimizer: OPT, executor: "inline", ...o,
  });
  try {
    const losses: number[] = [];
    for (const b of batches()) losses.push(await pipe.step(b.x, b.y));
    return { state: await pipe.stateDict(), losses };
  } finally {
    await pipe.close();
  }
}

function assertClose(got: Map<string, Tensor>, want: Map<string, Tensor>, tol: number, what: string): void {
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `${what}: state-dict names`);
  for (const [k, w] of want) {
    const g = got.get(k)!;
    for (let i = 0; i < w.size; i++) {
      const err = Math.abs(g.data[i] - w.data[i]) / Math.max(1, Math.abs(w.data[i]));
      assert.ok(err <= tol, `${what}: ${k}[${i}] = ${g.data[i]} vs ${w.data[i]}`);
    }
  }
}

const CASES: Partial<PipelineOptions>[] = [
  { schedule: "gpipe" }, { schedule: "1f1b" }, { schedule: "interleaved", chunks: 2 }, { schedule: "zb-h1" },
  { schedule: "1f1b", recompute: "always", stages: 3 }, { schedule: "gpipe", weightGrads: "step", balance: [2, 5] },
  { schedule: "zb-v", stages: 4 }, { schedule: "dualpipev", stages: 4 },
];

for (const c of CASES) {
  test(`user MLP + user MSE via pipe.step equals single-device training (${JSON.stringify(c)}); threads == inline bit for bit`, async () => {
    const want = singleDevice();
    const inline = await train(c);
    assertClose(inline.state, want, 1e-5, `${c.schedule} inline`);
    const threads = await train({ ...c, executor: "threads" });
    for (const [k, t] of inline.state) assert.deepEqual(threads.state.get(k)!.data, t.data, `${c.schedule}: threads ${k} differs from inline`);
    assert.deepEqual(threads.losses, inline.losses);
  });
}

test("a Sequential built asynchronously, the built-in mse, and a loss function inline all give the same weights", async () => {
  const a = await train({ schedule: "1f1b", loss: "mse" });
  const b = await train({ schedule: "1f1b", model: { module: MODULE, export: "buildSequential", args: { ...ARGS } }, loss: userMse });
  const c = await train({ schedule: "1f1b", model: buildMlp(ARGS), loss: userMse });
  assertClose(a.state, b.state, 1e-6, "built-in mse vs user mse");
  for (const [k, t] of b.state) assert.deepEqual(c.state.get(k)!.data, t.data, `inline layers ${k}`);
  assert.deepEqual([...a.state.keys()].slice(0, 2), ["0.weight", "0.bias"], "torch.nn.Sequential names");
});

test("save and resume continue exactly; eval runs the trained model", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-lib-"));
  try {
    const all = batches();
    const opts: PipelineOptions = { model: { module: MODULE, export: "buildMlp", args: { ...ARGS } }, loss: "mse", stages: 2, microbatches: 4, optimizer: OPT, executor: "threads" };
    const straight = await createPipeline(opts);
    for (const b of all) await straight.step(b.x, b.y);
    const want = await straight.stateDict();
    const out = await straight.eval(all[0].x);
    assert.deepEqual(out.shape, [N, 2]);
    await straight.close();

    const first = await createPipeline(opts);
    await first.step(all[0].x, all[0].y);
    await first.save(join(dir, "ck.safetensors"));
    await first.close();
    const resumed = await createPipeline({ ...opts, resume: join(dir, "ck.safetensors") });
    assert.equal(resumed.steps, 1);
    for (const b of all.slice(1)) await resumed.step(b.x, b.y);
    const got = await resumed.stateDict();
    await resumed.close();
    for (const [k, t] of want) assert.deepEqual(got.get(k)!.data, t.data, `resumed ${k}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const method of ["pipemare", "pb"] as const) test(`asynchronous ${method} on a user model: windows without flush, threads == inline, loss falls`, async () => {
  const run = async (executor: "inline" | "threads"): Promise<number[]> => {
    const pipe = await createPipeline({ model: { module: MODULE, export: "buildMlp", args: { ...ARGS } }, loss: "mse",
      schedule: "async", async: { method }, window: 3, stages: 2, microbatches: 2, optimizer: { name: "sgd", lr: 0.02, momentum: 0.9 }, executor });
    try {
      const all = batches();
      const losses: number[] = [];
      for (let e = 0; e < 4; e++) losses.push(...await pipe.run(all));
      await assert.rejects(pipe.step(all[0].x, all[0].y), /pipe\.run/);
      return losses;
    } finally { await pipe.close(); }
  };
  const inline = await run("inline");
  const threads = await run("threads");
  assert.deepEqual(threads, inline);
  const epoch = (e: number): number => inline.slice(3 * e, 3 * e + 3).reduce((a, b) => a + b, 0);
  assert.ok(epoch(3) < epoch(0), `loss over the same 3 batches falls from epoch 1 to 4: ${inline.join(", ")}`);
});

// --- bad input: each message names the problem -----------------------------------------------
test("replicas: 2 on threads equal single-device training within 1e-5 and split the rows; inline replicas give the threads' bits", async () => {
  const want = singleDevice();
  for (const schedule of ["1f1b", "zb-h1"] as const) {
    const two = await train({ schedule, executor: "threads", replicas: 2 });
    assertClose(two.state, want, 1e-5, `${schedule} threads x 2 replicas`);
    // The replicas did split the rows: one copy gives other bits.
    const one = await train({ schedule, executor: "threads" });
    assert.ok([...one.state].some(([k, t]) => t.data.some((v, i) => v !== two.state.get(k)!.data[i])), `${schedule}: 2 replicas gave one copy's bits exactly`);
    const inline = await train({ schedule, replicas: 2 });
    assert.deepEqual(inline.losses, two.losses, `${schedule}: inline x 2 replicas losses`);
    for (const [k, t] of two.state) assert.deepEqual(inline.state.get(k)!.data, t.data, `${schedule}: inline x 2 replicas ${k}`);
  }
  // Inline replicas build their copies from the model's source: layers given as objects have none.
  await assert.rejects(train({ model: buildMlp(ARGS), replicas: 2 }), /inline executor with 2 replicas: each replica builds its own copy of the model from a module export or a built-in spec/);
});

const base = (): PipelineOptions => ({ model: { module: MODULE, export: "buildMlp", args: { ...ARGS } }, stages: 2, microbatches: 2, optimizer: OPT, executor: "threads" });

test("an impossible cut names the units and the stages", async () => {
  await assert.rejects(createPipeline({ ...base(), stages: 8 }), /cannot cut 7 layers into 8 parts without an empty stage/);
  await assert.rejects(createPipeline({ ...base(), balance: [3, 3] }), /createPipeline: balance 3,3 sums to 6, but the model has 7 layers .*valid balance is --balance 4,3|createPipeline: balance 3,3 sums to 6, but the model has 7 layers/);
});

test("a loss returning the wrong shape names the shape", async () => {
  for (const executor of ["inline", "threads"] as const) {
    const pipe = await createPipeline({ ...base(), executor, loss: { module: MODULE, export: "unreducedLoss" } });
    const b = batches()[0];
    await assert.rejects(pipe.step(b.x, b.y), /loss 'unreducedLoss' must return a scalar \(one value: the micro-batch mean\), got shape \[6, 2\]/);
    await pipe.close();
  }
});

test("a module that cannot be imported names the path and the cause", async () => {
  const missing = new URL("./no-such-model.js", import.meta.url).href;
  await assert.rejects(createPipeline({ ...base(), model: { module: missing, export: "build" } }), /model source: cannot import module '.*no-such-model\.js': Cannot find module/);
  await assert.rejects(createPipeline({ ...base(), model: { module: "./relative.js" } }), /must be a file URL or an absolute path/);
  await assert.rejects(createPipeline({ ...base(), model: { module: MODULE, export: "nope" } }), /has no export 'nope'; its exports: .*buildMlp/);
});

test("an export that is not a function (or builds no layer list) is named", async () => {
  await assert.rejects(createPipeline({ ...base(), model: { module: MODULE, export: "notAFunction" } }), /export 'notAFunction' of module '.*' is a number \(42\), not a function \(args\) => Module\[\] \| Sequential/);
  await assert.rejects(createPipeline({ ...base(), loss: { module: MODULE, export: "notAFunction" } }), /loss: export 'notAFunction' .* not a function \(output, target\) => Tensor/);
  await assert.rejects(createPipeline({ ...base(), model: { module: MODULE, export: "buildNothing" } }), /returned: expected a Module\[\] or a Sequential .*got an object/);
});

test("functions and inline layers on threads say to export them from a module", async () => {
  await assert.rejects(createPipeline({ ...base(), loss: userMse }), /a loss function runs on the inline executor only; .*loss: \{module: new URL\("\.\/loss\.js", import\.meta\.url\), export: "userMse"\}/);
  await assert.rejects(createPipeline({ ...base(), model: buildMlp(ARGS) }), /runs on the inline executor only; .*module of its own .*model: \{module: new URL\("\.\/model\.js", import\.meta\.url\)/);
  await assert.rejects(createPipeline({ ...base(), schedule: "zigzag" as ScheduleName }), /schedule "zigzag" is not valid; choose one of: gpipe, 1f1b, interleaved, zb-h1, async/);
});

test("example (a) runs from the repo as a user runs it: threads == inline bit for bit, loss falls", () => {
  const example = fileURLToPath(new URL("../../examples/regression-mlp.mjs", import.meta.url));
  const last = (executor: string): { first_loss: number; last_loss: number; weights_sha256: string } => {
    const out = execFileSync(process.execPath, [example, "--steps", "12", "--executor", executor], { encoding: "utf8" }).trim().split("\n");
    return JSON.parse(out[out.length - 1]) as { first_loss: number; last_loss: number; weights_sha256: string };
  };
  const t = last("threads"), i = last("inline");
  assert.equal(t.weights_sha256, i.weights_sha256);
  assert.ok(t.last_loss < t.first_loss, `${t.first_loss} -> ${t.last_loss}`);
});

test("pipe.step names bad mini-batches", async () => {
  const pipe = await createPipeline({ ...base(), executor: "inline", loss: "mse" });
  try {
    await assert.rejects(pipe.step(Tensor.zeros([1, 6]), Tensor.zeros([1, 2])), /pipe\.step: a mini-batch of 1 cannot be split into 2 micro-batches/);
    await assert.rejects(pipe.step(Tensor.zeros([4, 6]), Tensor.zeros([3, 2])), /pipe\.step: targets \[3, 2\] must have 4 rows like x \[4, 6\]/);
    await assert.rejects(pipe.step(Tensor.zeros([4, 6]), new Int32Array(4)), /loss 'mse' needs float targets/);
  } finally { await pipe.close(); }
});

test("loadStateDict replaces the weights on every executor; the threads executor restarts with them", async () => {
  const b = batches()[0];
  const donor = await createPipeline({ ...base(), loss: "mse", executor: "inline" });
  await donor.step(b.x, b.y);
  const state = await donor.stateDict();
  await donor.close();
  for (const executor of ["inline", "threads"] as const) {
    const pipe = await createPipeline({ ...base(), loss: "mse", executor });
    await pipe.loadStateDict(state);
    const got = await pipe.stateDict();
    for (const [k, t] of state) assert.deepEqual(got.get(k)!.data, t.data, `${executor}: ${k}`);
    await assert.rejects(pipe.loadStateDict(new Map([["0.weight", Tensor.zeros([1])]])), /missing keys|shape mismatch/);
    await pipe.close();
  }
  // Asynchronous options are typed camelCase keys, and errors name them as the library spells them.
  const asyncPipe = (a: object): Promise<unknown> => createPipeline({ ...base(), schedule: "async", async: a as never });
  await assert.rejects(asyncPipe({ method: "pipemare", "warmup-epochs": 1 }), /createPipeline: async\.warmup-epochs is not an option; the options are method, pipemareLr/);
  await assert.rejects(asyncPipe({ method: "pipemare", spikeCompensation: false }), /createPipeline: async\.spikeCompensation applies to async\.method pb only; got async\.method pipemare/);
  await assert.rejects(asyncPipe({ method: "pipemare", pipemareCorrection: false, pipemareDecay: 0.5 }), /async\.pipemareDecay has no effect with async\.pipemareCorrection off/);
  await assert.rejects(asyncPipe({ method: "pipemare", pipemareDecay: 2 }), /async\.pipemareDecay 2 must be in \(0, 1\)/);
});

/** A schedule written by hand: stage 0 runs three forwards ahead, stage 1 alternates. */
function handSchedule(lists: string[]): Schedule {
  return { ...generateSchedule("1f1b", { stages: 2, microbatches: 4 }), name: "by hand", workers: lists.map((l) => l.split(" ").map(parseAction)) };
}

test("a Schedule object written by hand trains like single-device training; threads == inline bit for bit", async () => {
  const schedule = handSchedule(["0F0 0F1 0F2 0B0 0F3 0B1 0B2 0B3 0STEP0", "1F0 1B0 1F1 1B1 1F2 1B2 1F3 1B3 1STEP0"]);
  const want = singleDevice();
  const inline = await train({ schedule });
  assertClose(inline.state, want, 1e-5, "hand schedule inline");
  const threads = await train({ schedule, executor: "threads" });
  for (const [k, t] of inline.state) assert.deepEqual(threads.state.get(k)!.data, t.data, `hand schedule: threads ${k} differs from inline`);
});

test("a Schedule object that deadlocks, or is for another shape, is refused before the pipeline starts", async () => {
  // Stage 1 waits for micro-batch 1's activation before running 0's backward, which stage 0 needs first.
  const deadlock = handSchedule(["0F0 0B0 0F1 0F2 0F3 0B1 0B2 0B3 0STEP0", "1F0 1F1 1B0 1B1 1F2 1B2 1F3 1B3 1STEP0"]);
  await assert.rejects(createPipeline({ ...base(), microbatches: 4, schedule: deadlock }), /createPipeline: invalid schedule 'by hand'/);
  const ok = handSchedule(["0F0 0F1 0F2 0B0 0F3 0B1 0B2 0B3 0STEP0", "1F0 1B0 1F1 1B1 1F2 1B2 1F3 1B3 1STEP0"]);
  await assert.rejects(createPipeline({ ...base(), microbatches: 2, schedule: ok }), /schedule object is for 2 stage\(s\) and 4 micro-batch\(es\); the options say stages 2, microbatches 2/);
  await assert.rejects(createPipeline({ ...base(), schedule: { name: "x" } as unknown as Schedule }), /schedule must be a name \(gpipe, 1f1b, interleaved, zb-h1, async, zb-v, dualpipev\) or a Schedule object/);
});

// The model reference typed against the module: the compiler checks that the export is a model factory.
const TYPED_MODEL = { module: new URL("./lib-user-model.js", import.meta.url), export: "buildMlp", args: { ...ARGS } } satisfies ModuleModel<typeof UserModel>;
// @ts-expect-error userMse is a loss, not a model factory
const _notAFactory: ModuleModel<typeof UserModel> = { module: MODULE, export: "userMse" };

test("pipe.run on a synchronous schedule equals its steps in order; pipe.evaluate equals the user loss of pipe.eval's output", async () => {
  const o = { model: TYPED_MODEL, loss: { module: new URL(MODULE), export: "userMse" },
    stages: 2, microbatches: 4, optimizer: OPT, schedule: "1f1b" } as const;
  const [a, b] = [await createPipeline({ ...o, executor: "threads" }), await createPipeline({ ...o, executor: "inline" })];
  try {
    const data = batches();
    const viaRun = await a.run(data);
    const viaStep: number[] = [];
    for (const d of data) viaStep.push(await b.step(d.x, d.y));
    assert.deepEqual(viaRun, viaStep);
    const ev = await a.evaluate(data[0].x, data[0].y);
    const want = userMse(await a.eval(data[0].x), data[0].y).item();
    assert.ok(Math.abs(ev.loss - want) <= 1e-6 * Math.max(1, Math.abs(want)), `evaluate ${ev.loss} vs ${want}`);
    assert.equal(ev.count, N);
  } finally {
    await a.close();
    await b.close();
  }
});
