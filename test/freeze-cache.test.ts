import { test } from "node:test";
import assert from "node:assert/strict";
import { ActivationCache, cacheBytes, checkCacheFits } from "../src/pipeline/freeze/cache.js";
import { Tensor } from "../src/tensor/tensor.js";

/** Outputs [n, 2, 3] whose entries encode (sample, position) so rows can be checked after lookup. */
function outputsFor(indices: number[], tag = 0): Tensor {
  const d = new Float32Array(indices.length * 6);
  indices.forEach((s, k) => { for (let j = 0; j < 6; j++) d[k * 6 + j] = s * 100 + j + tag; });
  return new Tensor(d, [indices.length, 2, 3]);
}

test("cache is off below 3 frozen layers and stores/returns per-sample rows from 3 on", () => {
  const c = new ActivationCache({ maxBytes: 1 << 20 });
  assert.equal(c.update(2, 10, [2, 3]), "disabled");
  c.put([1], outputsFor([1]));
  assert.equal(c.lookup([1]), null);
  assert.equal(c.active, false);
  assert.equal(c.update(3, 10, [2, 3]), "enabled");
  assert.equal(c.bytes, 10 * 6 * 4);
  assert.equal(c.lookup([1]), null); // empty
  c.put([1, 4], outputsFor([1, 4]));
  const hit = c.lookup([4, 1])!;
  assert.deepEqual(hit.shape, [2, 2, 3]);
  assert.deepEqual([...hit.data], [...outputsFor([4, 1]).data]);
  assert.equal(c.lookup([1, 2]), null); // 2 missing: the whole batch is a miss
  assert.equal(c.has(4), true);
  assert.equal(c.has(2), false);
  assert.deepEqual(c.stats, { hits: 2, misses: 3, stored: 2, invalidations: 0 });
  // A lookup returns a copy: changing it does not change the cache.
  hit.data[0] = -1;
  assert.equal(c.lookup([4])!.data[0], 400);
});

test("invalidated when the frozen boundary moves, kept while it stays", () => {
  const c = new ActivationCache({ maxBytes: 1 << 20 });
  c.update(3, 5, [2, 3]);
  c.put([0, 2], outputsFor([0, 2]));
  assert.equal(c.update(3, 5, [2, 3]), "kept");
  assert.ok(c.lookup([2, 0]) !== null);
  assert.equal(c.update(4, 5, [2, 3]), "invalidated");
  assert.equal(c.boundary, 4);
  assert.equal(c.has(0), false);
  assert.equal(c.lookup([0]), null);
  c.put([0], outputsFor([0], 7));
  assert.equal(c.lookup([0])!.data[0], 7); // the new prefix's output, not the old one
  // A new output shape at the same boundary also starts afresh.
  assert.equal(c.update(4, 5, [6]), "invalidated");
  assert.equal(c.has(0), false);
  assert.equal(c.update(2, 5, [6]), "disabled");
  assert.equal(c.stats.invalidations, 3);
});

test("memory bound: checked before filling, with a message naming both ways out", () => {
  assert.equal(cacheBytes(1000, [16, 64]), 1000 * 16 * 64 * 4);
  const need = cacheBytes(1000, [16, 64]); // 4 096 000 B = 3.9 MB
  assert.doesNotThrow(() => checkCacheFits(1000, [16, 64], need));
  const c = new ActivationCache({ maxBytes: need - 1 });
  assert.throws(() => c.update(3, 1000, [16, 64]),
    /AutoCache: caching the frozen prefix's output for 1000 samples of shape \[16, 64\] needs 3\.9 MB, more than the bound of 3\.9 MB; run with --cache off, or raise the bound \(--cache-mb 4 or more\)/);
  assert.equal(c.active, false);
  assert.equal(c.bytes, 0);
  const named = new ActivationCache({ maxBytes: 1024, boundFlag: "--cache-bytes" });
  assert.throws(() => named.update(5, 100, [8]), /--cache-bytes/);
  assert.doesNotThrow(() => new ActivationCache({ maxBytes: 3200 }).update(5, 100, [8]));
});

test("bad input names the value", () => {
  const c = new ActivationCache({ maxBytes: 1 << 20 });
  c.update(3, 4, [2, 3]);
  assert.throws(() => c.put([0, 1], outputsFor([0])), /outputs \[1, 2, 3\] do not match 2 samples of shape \[2, 3\], expected \[2, 2, 3\]/);
  assert.throws(() => c.put([4], outputsFor([4])), /sample index 4 out of range \[0, 4\)/);
  assert.throws(() => c.lookup([-1]), /sample index -1 out of range/);
  assert.throws(() => new ActivationCache({ maxBytes: NaN }), /byte bound NaN/);
  assert.throws(() => c.update(3, 0, [2]), /sample count 0 must be a positive integer/);
});
