// WGSL for the batched matmul: square tiles of T x T outputs per workgroup, staged through workgroup
// memory. Each output sums its k products in order 0..k-1 whatever T is (the zero padding of a
// partial tile adds exact zeros), so the tile size chosen for an adapter changes speed, not bits.
import { header } from "./wgsl.js";

export function matmulShader(tile: number): string {
  const t = tile;
  return `${header([["A", "r"], ["B", "r"], ["BIAS", "r"], ["O", "rw"]],
    ["m", "k", "n", "transA", "transB", "acc", "bShared", "hasBias"])}
var<workgroup> As: array<f32, ${t * t}>;
var<workgroup> Bs: array<f32, ${t * t}>;
@compute @workgroup_size(${t}, ${t}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wid.y * ${t}u + lid.y;
  let col = wid.x * ${t}u + lid.x;
  let aOff = wid.z * P.m * P.k;
  let bOff = select(wid.z * P.k * P.n, 0u, P.bShared != 0u);
  var s = 0.0;
  for (var t0 = 0u; t0 < P.k; t0 += ${t}u) {
    let ak = t0 + lid.x;
    var av = 0.0;
    if (row < P.m && ak < P.k) { av = A[aOff + select(row * P.k + ak, ak * P.m + row, P.transA != 0u)]; }
    As[lid.y * ${t}u + lid.x] = av;
    let bk = t0 + lid.y;
    var bv = 0.0;
    if (bk < P.k && col < P.n) { bv = B[bOff + select(bk * P.n + col, col * P.k + bk, P.transB != 0u)]; }
    Bs[lid.y * ${t}u + lid.x] = bv;
    workgroupBarrier();
    for (var q = 0u; q < ${t}u; q++) { s = s + As[lid.y * ${t}u + q] * Bs[q * ${t}u + lid.x]; }
    workgroupBarrier();
  }
  if (row >= P.m || col >= P.n) { return; }
  if (P.hasBias != 0u) { s = s + BIAS[col]; }
  let o = wid.z * P.m * P.n + row * P.n + col;
  if (P.acc != 0u) { O[o] = O[o] + s; } else { O[o] = s; }
}
`;
}
