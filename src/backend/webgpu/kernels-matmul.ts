// WGSL for the batched matmul with register blocking: a workgroup of T x T invocations computes a
// (T*R) x (T*R) block of outputs, each invocation an R x R set (rows lid.y + r*T, columns lid.x + c*T,
// so neighbouring invocations touch neighbouring columns). The operands pass through workgroup memory
// in k-slices of depth T, each invocation loading R elements of each. Every output still sums its k
// products in order 0..k-1 (zero padding of partial blocks adds exact zeros), so T and R change the
// speed, not the bits. Transposed layouts are read in place by the loads.
import { header } from "./wgsl.js";

/** Outputs per invocation along each axis. */
export const MATMUL_REGISTERS = 4;

/** The edge of the output block one workgroup computes, for workgroups of tile x tile invocations. */
export function matmulBlock(tile: number): number {
  return tile * MATMUL_REGISTERS;
}

export function matmulShader(tile: number): string {
  const t = tile;
  const r = MATMUL_REGISTERS;
  const bm = t * r; // block edge (rows of A's slice, columns of B's slice)
  const cells = [...Array(r * r).keys()];
  const loads = [...Array(r).keys()];
  return `${header([["A", "r"], ["B", "r"], ["BIAS", "r"], ["O", "rw"]],
    ["m", "k", "n", "transA", "transB", "acc", "bShared", "hasBias"])}
var<workgroup> As: array<f32, ${bm * t}>; // [block row][k]
var<workgroup> Bs: array<f32, ${t * bm}>; // [k][block column]
@compute @workgroup_size(${t}, ${t}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * ${bm}u;
  let col0 = wid.x * ${bm}u;
  let flat = lid.y * ${t}u + lid.x;
  let aOff = wid.z * P.m * P.k;
  let bOff = select(wid.z * P.k * P.n, 0u, P.bShared != 0u);
${cells.map((i) => `  var s${i} = 0.0;`).join("\n")}
  for (var t0 = 0u; t0 < P.k; t0 += ${t}u) {
${loads.map((p) => `    {
      let e = flat + ${p * t * t}u;
      let ar = row0 + e / ${t}u;
      let ak = t0 + e % ${t}u;
      var av = 0.0;
      if (ar < P.m && ak < P.k) { av = A[aOff + select(ar * P.k + ak, ak * P.m + ar, P.transA != 0u)]; }
      As[e] = av;
      let bk = t0 + e / ${bm}u;
      let bc = col0 + e % ${bm}u;
      var bv = 0.0;
      if (bk < P.k && bc < P.n) { bv = B[bOff + select(bk * P.n + bc, bc * P.k + bk, P.transB != 0u)]; }
      Bs[e] = bv;
    }`).join("\n")}
    workgroupBarrier();
    for (var q = 0u; q < ${t}u; q++) {
${loads.map((i) => `      let a${i} = As[(lid.y + ${i * t}u) * ${t}u + q];`).join("\n")}
${loads.map((j) => `      let b${j} = Bs[q * ${bm}u + lid.x + ${j * t}u];`).join("\n")}
${cells.map((i) => `      s${i} = s${i} + a${Math.floor(i / r)} * b${i % r};`).join("\n")}
    }
    workgroupBarrier();
  }
${cells.map((i) => `  store(row0 + lid.y + ${Math.floor(i / r) * t}u, col0 + lid.x + ${(i % r) * t}u, s${i}, wid.z);`).join("\n")}
}

fn store(row: u32, col: u32, v: f32, b: u32) {
  if (row >= P.m || col >= P.n) { return; }
  var s = v;
  if (P.hasBias != 0u) { s = s + BIAS[col]; }
  let o = b * P.m * P.n + row * P.n + col;
  if (P.acc != 0u) { O[o] = O[o] + s; } else { O[o] = s; }
}
`;
}
