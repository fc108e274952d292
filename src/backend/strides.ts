// Strides for reading an array of one shape as another it broadcasts to (the kernels' and the ops'
// shared bookkeeping; the backend layer imports nothing above it).

/**
 * Row-major strides of `shape` (same rank as `outShape`) read as `outShape`: a broadcast dimension
 * (size 1 against a larger one) gets stride 0.
 */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length).fill(0);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = shape[i] === 1 && outShape[i] !== 1 ? 0 : s;
    s *= shape[i];
  }
  return strides;
}
