// WGSL building blocks shared by the kernels: buffer declarations, the uniform block, the entry
// points of a kernel with one invocation per output element and of one with a workgroup per row,
// fixed-order workgroup trees, and reductions built from either. Every sum has a fixed order, so
// results depend on the inputs and the configuration (workgroup size), never on timing.

export type Access = "r" | "rw";
export type Elem = "f32" | "i32" | "u32";
export type Decl = readonly [name: string, access: Access, elem?: Elem];

/** Storage buffers at bindings 0.., then the uniform block `P` with u32 fields, then f32 fields. */
export function header(decls: readonly Decl[], u: readonly string[], f: readonly string[] = []): string {
  const buffers = decls.map(([name, access, elem = "f32"], i) =>
    `@group(0) @binding(${i}) var<storage, ${access === "r" ? "read" : "read_write"}> ${name}: array<${elem}>;`);
  const fields = [...u.map((n) => `${n}: u32,`), ...f.map((n) => `${n}: f32,`)];
  if (fields.length === 0) fields.push("unused: u32,");
  return `${buffers.join("\n")}\nstruct Params { ${fields.join(" ")} }\n` +
    `@group(0) @binding(${decls.length}) var<uniform> P: Params;\n`;
}

/** A kernel over `P.n` items: `body` sees the item index `i` (u32). */
export function perItem(wg: number, decls: readonly Decl[], u: readonly string[], f: readonly string[], body: string,
  helpers = ""): string {
  return `${header(decls, ["n", ...u], f)}${helpers}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * ${wg}u + lid;
  if (i >= P.n) { return; }
${body}
}
`;
}

/**
 * A kernel with one workgroup per row (`P.n` rows): `body` sees the row index `row` and the
 * invocation index `lid`, strides over columns by `wg`, and combines the invocations' partial
 * results with wgReduce into the workgroup arrays red0..red{reductions-1}.
 */
export function perRow(wg: number, decls: readonly Decl[], u: readonly string[], f: readonly string[], reductions: number,
  body: string, helpers = ""): string {
  const arrays = [...Array(reductions).keys()].map((k) => `var<workgroup> red${k}: array<f32, ${wg}>;`);
  return `${header(decls, ["n", ...u], f)}
${arrays.join("\n")}${helpers}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= P.n) { return; }
${body}
}
`;
}

/**
 * Statements that combine every invocation's `value` into `let result` (the same in all of them):
 * a tree over workgroup array red{slot} in a fixed order, so the bits depend on the workgroup size
 * (a configuration) but never on timing. Each reduction of a kernel needs its own slot: Mesa's
 * llvmpipe re-read an earlier result from workgroup memory after a later reduction had reused it.
 */
export function wgReduce(wg: number, op: "sum" | "max", value: string, result: string, slot: number): string {
  const red = `red${slot}`;
  const steps: string[] = [];
  for (let s = wg / 2; s >= 1; s /= 2) {
    const combine = op === "sum" ? `${red}[lid] + ${red}[lid + ${s}u]` : `max(${red}[lid], ${red}[lid + ${s}u])`;
    steps.push(`  if (lid < ${s}u) { ${red}[lid] = ${combine}; }\n  workgroupBarrier();`);
  }
  return `
  ${red}[lid] = ${value};
  workgroupBarrier();
${steps.join("\n")}
  let ${result} = ${red}[0];`;
}

/** A reduction kernel's parts, WGSL: see `reduction`. */
export interface ReductionBody {
  /** Statements per output `o` (u32), before the loop. */
  setup: string;
  /** The number of terms, an expression. */
  len: string;
  /** Statements per term k (u32) before the sums; may `continue` to skip a term. */
  each?: string;
  /** Accumulator name -> the term added for k. */
  terms: Readonly<Record<string, string>>;
  /** Statements that see the sums under the accumulators' names; run once per output. */
  finish: string;
}

/**
 * A kernel with P.n outputs, each a sum of terms over k < len. With `lanes` 1 an invocation sums one
 * output's terms in order; with `lanes` = wg a workgroup shares an output (for long sums over few
 * outputs, where one invocation per output leaves most of a device idle): invocation lid sums
 * k = lid, lid + wg, ... and the partial sums meet in wgReduce's fixed tree. Either way the order,
 * so the bits, depend on the configuration (wg, lanes), never on timing.
 */
export function reduction(wg: number, lanes: number, decls: readonly Decl[], u: readonly string[], f: readonly string[],
  r: ReductionBody): string {
  const names = Object.keys(r.terms);
  const loop = (start: string, step: string): string => `
${r.setup}
  ${names.map((n) => `var ${n}_part = 0.0;`).join(" ")}
  for (var k = ${start}; k < ${r.len}; k += ${step}) {
${r.each ?? ""}
    ${names.map((n) => `${n}_part = ${n}_part + ${r.terms[n]};`).join("\n    ")}
  }`;
  if (lanes === 1) {
    return perItem(wg, decls, u, f, `  let o = i;${loop("0u", "1u")}
${names.map((n) => `  let ${n} = ${n}_part;`).join("\n")}
${r.finish}`);
  }
  return perRow(wg, decls, u, f, names.length, `  let o = row;${loop("lid", `${wg}u`)}
${names.map((n, s) => wgReduce(wg, "sum", `${n}_part`, n, s)).join("\n")}
  if (lid == 0u) {
${r.finish}
  }`);
}

/** erfc in f32 (Numerical Recipes' erfcc: fractional error below 1.2e-7 everywhere). */
export const ERFC = `
fn erfc_(z: f32) -> f32 {
  let a = abs(z);
  let t = 1.0 / (1.0 + 0.5 * a);
  let r = t * exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(2.0 - r, r, z >= 0.0);
}
`;

/** `acc ? old + v : v` for an output that may accumulate. */
export function store(target: string, value: string, flag = "P.acc"): string {
  return `  if (${flag} != 0u) { ${target} = ${target} + ${value}; } else { ${target} = ${value}; }`;
}

/**
 * A kernel module with each `...Shader` builder remembering its sources by arguments: a kernel's WGSL
 * is built once, not on every dispatch (and the same string then finds its compiled id at once).
 */
export function builtOnce<M extends object>(m: M): M {
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(m)) {
    if (typeof f !== "function" || !name.endsWith("Shader")) { out[name] = f; continue; }
    const built = new Map<string, string>();
    out[name] = (...args: (number | string)[]): string => {
      const key = args.join(",");
      let code = built.get(key);
      if (code === undefined) built.set(key, code = (f as (...a: (number | string)[]) => string)(...args));
      return code;
    };
  }
  return out as M;
}
