// The webgpu backend's upload cache on its own (no device): a plain array's device copy is found
// while its bits stay the same, freed when they change, and the oldest copies are freed first once
// the kept words pass the budget. The oracle is the list of ids the cache hands back to be freed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { UploadCache } from "../src/backend/webgpu/upload-cache.js";

test("upload cache: found while the bits stay the same (-0 differs from 0), freed when they change", () => {
  const freed: number[] = [];
  const cache = new UploadCache((id) => freed.push(id));
  const a = Float32Array.of(1, 0, 3);
  assert.equal(cache.find(a, a), undefined);
  cache.keep(a, a, 7);
  assert.equal(cache.find(a, a), 7);
  a[1] = -0;
  assert.equal(cache.find(a, a), undefined, "a sign change of zero is a change");
  assert.deepEqual(freed, [7]);
  cache.keep(a, a, 8);
  assert.equal(cache.find(a, a), 8);
});

test("upload cache: past the word budget the oldest copies are freed first, and a freed copy is never handed out", () => {
  const freed: number[] = [];
  const cache = new UploadCache((id) => freed.push(id), 8);
  const arrays = [0, 1, 2, 3].map((k) => Int32Array.of(k, k, k));
  arrays.forEach((a, k) => cache.keep(a, a, 10 + k));
  // 12 words kept against a budget of 8: the first two went, oldest first.
  assert.deepEqual(freed, [10, 11]);
  assert.equal(cache.find(arrays[0], arrays[0]), undefined);
  assert.equal(cache.find(arrays[1], arrays[1]), undefined);
  assert.equal(cache.find(arrays[2], arrays[2]), 12);
  assert.equal(cache.find(arrays[3], arrays[3]), 13);
  assert.deepEqual(freed, [10, 11], "each copy is freed once");
  // A copy dropped for a change no longer counts against the budget.
  arrays[2][0] = 9;
  assert.equal(cache.find(arrays[2], arrays[2]), undefined);
  const b = Int32Array.of(5, 5, 5);
  cache.keep(b, b, 14);
  assert.deepEqual(freed, [10, 11, 12]);
  assert.equal(cache.find(arrays[3], arrays[3]), 13);
  assert.equal(cache.find(b, b), 14);
});
