import { test } from "node:test";
import assert from "node:assert/strict";
import { mean, median, medianUpper, round, roundTo, sampleStd } from "../src/util/stats.js";

test("median averages the two middle values; medianUpper takes the larger; both NaN when empty", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(medianUpper([3, 1, 2]), 2);
  assert.equal(medianUpper([4, 1, 3, 2]), 3);
  assert.ok(Number.isNaN(median([])));
  assert.ok(Number.isNaN(medianUpper([])));
  const xs = [5, 4, 3];
  median(xs);
  medianUpper(xs);
  assert.deepEqual(xs, [5, 4, 3], "the input is not sorted in place");
});

test("mean, sample std, and rounding to significant digits or decimal places", () => {
  assert.equal(mean([1, 2, 6]), 3);
  assert.ok(Number.isNaN(mean([])));
  // Sample std of 2, 4, 4, 4, 5, 5, 7, 9: squared deviations from 5 sum to 32, over n - 1 = 7.
  assert.equal(sampleStd([2, 4, 4, 4, 5, 5, 7, 9]), Math.sqrt(32 / 7));
  assert.equal(sampleStd([3]), 0);
  assert.ok(Number.isNaN(sampleStd([])));
  assert.equal(round(123.456789, 4), 123.5);
  assert.equal(round(0.000123456, 2), 0.00012);
  assert.equal(roundTo(123.456789, 1), 123.5);
  assert.equal(roundTo(0.000123456, 2), 0);
});
