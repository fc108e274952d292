// The asynchronous-method configuration: the asynchronous flags -> policy + transforms, with clear errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseFlags, type CommandSpec } from "../src/cli/args.js";
import {
  ASYNC_FLAGS, parseAsyncConfig, annealSteps, describeConfig, createWeightPolicy, stageLrFactor, stageSpikeDelay,
  NaivePolicy, StashPolicy, CorrectionPolicy, PredictPolicy, DEFAULT_ANNEAL_EPOCHS, DEFAULT_PIPEMARE_DECAY,
  type MomentumSource,
} from "../src/pipeline/weights/index.js";

const cmd: CommandSpec = { name: "train", summary: "test", flags: { ...ASYNC_FLAGS, epochs: { type: "int", help: "epochs" } } };
const fromArgv = (argv: string[]) => parseAsyncConfig(parseFlags(cmd, argv));

test("each method maps to its policy and transforms, with the papers' defaults", () => {
  const naive = fromArgv([]);
  assert.equal(naive.method, "naive");
  assert.equal(naive.policy, "naive");
  assert.equal(fromArgv(["--method", "stash"]).policy, "stash");
  assert.equal(fromArgv(["--method", "2bw"]).policy, "2bw");

  const pm = fromArgv(["--method", "pipemare"]);
  assert.deepEqual([pm.policy, pm.pipemareLr, pm.pipemareCorrection, pm.spikeCompensation, pm.weightPrediction],
    ["pipemare-correction", true, true, false, false]);
  assert.equal(pm.decay, DEFAULT_PIPEMARE_DECAY);
  assert.equal(pm.annealSteps, null);
  const t1 = fromArgv(["--method", "pipemare", "--pipemare-correction", "off"]);
  assert.deepEqual([t1.policy, t1.pipemareLr], ["naive", true]);
  const t2 = fromArgv(["--method=pipemare", "--pipemare-lr=off"]);
  assert.deepEqual([t2.policy, t2.pipemareLr, t2.pipemareCorrection], ["pipemare-correction", false, true]);

  const pb = fromArgv(["--method", "pb"]);
  assert.deepEqual([pb.policy, pb.spikeCompensation, pb.weightPrediction, pb.pipemareLr], ["predict", true, true, false]);
  const sc = fromArgv(["--method", "pb", "--weight-prediction", "off"]);
  assert.deepEqual([sc.policy, sc.spikeCompensation], ["naive", true]);
  const naivePb = fromArgv(["--method", "pb", "--weight-prediction", "off", "--spike-compensation", "off"]);
  assert.deepEqual([naivePb.policy, naivePb.spikeCompensation], ["naive", false]);

  const consts = fromArgv(["--method", "pipemare", "--pipemare-anneal-steps", "500", "--pipemare-decay", "0.3", "--warmup-epochs", "2"]);
  assert.deepEqual([consts.annealSteps, consts.decay, consts.warmupEpochs], [500, 0.3, 2]);
  assert.equal(fromArgv(["--method", "pipemare", "--pipemare-gamma", "0"]).gamma, 0);
  assert.equal(fromArgv(["--method", "pb", "--weight-prediction-mode", "difference"]).predictionMode, "difference");
  assert.equal(fromArgv(["--method", "stash", "--warmup-epochs", "1"]).warmupEpochs, 1);
});

test("invalid combinations and values fail naming the flag and what is allowed", () => {
  assert.throws(() => fromArgv(["--method", "stash", "--pipemare-lr", "on"]), /--pipemare-lr applies to --method pipemare only; got --method stash/);
  assert.throws(() => fromArgv(["--method", "pipemare", "--spike-compensation", "on"]), /--spike-compensation applies to --method pb only; got --method pipemare/);
  assert.throws(() => fromArgv(["--weight-prediction", "on"]), /--weight-prediction applies to --method pb only; got --method naive/);
  assert.throws(() => fromArgv(["--method", "pb", "--pipemare-decay", "0.5"]), /--pipemare-decay applies to --method pipemare only/);
  assert.throws(() => fromArgv(["--method", "pipemare", "--pipemare-correction", "off", "--pipemare-decay", "0.5"]),
    /--pipemare-decay has no effect with --pipemare-correction off/);
  assert.throws(() => fromArgv(["--method", "pipemare", "--pipemare-lr", "off", "--pipemare-anneal-steps", "10"]),
    /--pipemare-anneal-steps has no effect with --pipemare-lr off/);
  assert.throws(() => fromArgv(["--method", "pb", "--weight-prediction", "off", "--weight-prediction-mode", "velocity"]),
    /--weight-prediction-mode has no effect with --weight-prediction off/);
  assert.throws(() => fromArgv(["--method", "pipemare", "--pipemare-gamma", "0.5", "--pipemare-decay", "0.5"]), /give one of them/);
  assert.throws(() => fromArgv(["--method", "pipemare", "--pipemare-decay", "1"]), /--pipemare-decay 1 must be in \(0, 1\)/);
  assert.throws(() => fromArgv(["--method", "pipemare", "--pipemare-gamma", "1"]), /--pipemare-gamma 1 must be in \[0, 1\)/);
  // value checks of the CLI parser itself, from the same table
  assert.throws(() => fromArgv(["--method", "gpipe"]), /--method 'gpipe' is not valid; choose one of: naive, stash, 2bw, pipemare, pb/);
  assert.throws(() => fromArgv(["--method", "pipemare", "--pipemare-lr", "yes"]), /--pipemare-lr 'yes' is not valid; choose one of: on, off/);
  assert.throws(() => fromArgv(["--warmup-epochs", "-1"]), /--warmup-epochs -1 is too small; it must be at least 0/);
  // direct calls (config files, tests) get the same checks
  assert.throws(() => parseAsyncConfig({ method: "pipemare", "pipemare-lr": "maybe" }), /--pipemare-lr 'maybe' is not valid; choose one of: on, off/);
  assert.throws(() => parseAsyncConfig({ method: "zb" }), /--method 'zb' is not valid/);
  assert.throws(() => parseAsyncConfig({ "warmup-epochs": 1.5 }), /--warmup-epochs '1.5' is not an integer/);
  assert.equal(parseAsyncConfig({ method: "pipemare", "pipemare-lr": false }).pipemareLr, false);
});

test("annealing horizon defaults to a few epochs of steps; describeConfig names every part", () => {
  const pm = fromArgv(["--method", "pipemare"]);
  assert.equal(annealSteps(pm, 100), DEFAULT_ANNEAL_EPOCHS * 100);
  assert.equal(annealSteps(fromArgv(["--method", "pipemare", "--pipemare-anneal-steps", "7"]), 100), 7);
  assert.throws(() => annealSteps(pm, 0), /stepsPerEpoch must be a positive integer, got 0/);
  assert.match(describeConfig(pm), /^pipemare: policy pipemare-correction, T1 lr rescheduling on .*T2 correction on \(gamma=D\^\(1\/tau\), D=0.1\)/);
  assert.match(describeConfig(fromArgv(["--method", "pb", "--spike-compensation", "off"])), /spike compensation off, weight prediction on/);
});

test("per-stage instantiation: policy class, lr factor and spike-compensation delay follow the config", () => {
  const params = [new Float32Array(4)];
  const momentum: MomentumSource = { velocity: () => null, lr: () => 0.1 };
  const mk = (argv: string[]) => createWeightPolicy(fromArgv(argv), { params, tau: 3, momentum });
  assert.ok(mk([]) instanceof NaivePolicy);
  assert.ok(mk(["--method", "stash"]) instanceof StashPolicy);
  const twobw = mk(["--method", "2bw"]);
  assert.ok(twobw instanceof StashPolicy && twobw.name === "2bw");
  const corr = mk(["--method", "pipemare"]);
  assert.ok(corr instanceof CorrectionPolicy);
  assert.ok(Math.abs((corr as CorrectionPolicy).gamma - Math.pow(0.1, 1 / 3)) < 1e-15);
  assert.equal((mk(["--method", "pipemare", "--pipemare-gamma", "0.5"]) as CorrectionPolicy).gamma, 0.5);
  const pred = mk(["--method", "pb"]);
  assert.ok(pred instanceof PredictPolicy && pred.horizon === 3);
  assert.throws(() => createWeightPolicy(fromArgv(["--method", "pb"]), { params, tau: 3 }), /needs the optimizer's momentum/);
  assert.throws(() => createWeightPolicy(fromArgv([]), { params, tau: 0 }), /tau must be a finite number >= 1, got 0/);

  const pm = fromArgv(["--method", "pipemare"]);
  assert.equal(stageLrFactor(pm, 4, 0, 10), 0.25);
  assert.equal(stageLrFactor(pm, 4, 10, 10), 1);
  assert.equal(stageLrFactor(fromArgv(["--method", "pipemare", "--pipemare-lr", "off"]), 4, 0, 10), 1);
  assert.equal(stageSpikeDelay(fromArgv(["--method", "pb"]), 5), 5);
  assert.equal(stageSpikeDelay(fromArgv(["--method", "pb", "--spike-compensation", "off"]), 5), 0);
  assert.equal(stageSpikeDelay(pm, 5), 0);
});
