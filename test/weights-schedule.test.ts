// The weight policies driven by the real asynchronous schedule generator: stashing holds exactly
// tau_s + 1 versions with tau_s = expectedDelay(S, s, M), 2bw works exactly where every delay is 1,
// and the PipeMare correction stays at one buffer on every stage.
import { test } from "node:test";
import assert from "node:assert/strict";
import { expectedDelay, generateSchedule, type Action } from "../src/pipeline/schedule/index.js";
import { StashPolicy, CorrectionPolicy, type WeightPolicy } from "../src/pipeline/weights/index.js";

function run(policy: WeightPolicy, live: Float32Array[], actions: readonly Action[], stage: number, check: boolean): void {
  const seen = new Map<number, string>();
  for (const a of actions) {
    if (a.stage !== stage) continue;
    if (a.kind === "F") seen.set(a.microbatch, JSON.stringify(policy.forwardWeights(a.microbatch).map((x) => Array.from(x))));
    else if (a.kind === "B") {
      const ws = JSON.stringify(policy.backwardWeights(a.microbatch).map((x) => Array.from(x)));
      if (check) assert.equal(ws, seen.get(a.microbatch), `stage ${stage} ${a.kind}${a.microbatch}`);
    } else if (a.kind === "STEP") {
      policy.beforeStep();
      for (const w of live) for (let i = 0; i < w.length; i++) w[i] += a.microbatch + 1 + i;
      policy.afterStep();
    }
  }
}

test("on the async 1F1B schedule, stash holds tau_s + 1 versions, 2bw fits iff tau_s = 1, correction one buffer", () => {
  for (let S = 1; S <= 5; S++) {
    for (let M = 1; M <= 6; M++) {
      const sched = generateSchedule("async", { stages: S, microbatches: M, steps: 2 * expectedDelay(S, 0, M) + 4 });
      const actions = sched.workers.flat();
      for (let s = 0; s < S; s++) {
        const tau = expectedDelay(S, s, M);
        const live = [new Float32Array([1, 2, 3])];
        const stash = new StashPolicy({ params: live });
        run(stash, live, actions, s, true);
        assert.equal(stash.bytes().peakVersions, tau + 1, `stash S=${S} M=${M} stage ${s}`);
        assert.equal(stash.bytes().extra, 0);

        const live2 = [new Float32Array([1, 2, 3])];
        const twobw = new StashPolicy({ params: live2 }, { name: "2bw", maxVersions: 2 });
        if (tau === 1) {
          run(twobw, live2, actions, s, true);
          assert.ok(twobw.bytes().peakVersions <= 2);
        } else {
          assert.throws(() => run(twobw, live2, actions, s, false), /2bw: holds at most 2 weight versions/, `2bw S=${S} M=${M} stage ${s}`);
        }

        const live3 = [new Float32Array([1, 2, 3])];
        const corr = new CorrectionPolicy({ params: live3 }, { tau });
        run(corr, live3, actions, s, false);
        assert.equal(corr.bytes().peakExtra, 12);
      }
    }
  }
});
