#!/usr/bin/env node
// Fails on any import cycle among the project's modules, and on any import that points up the folder
// layout (LAYERS below). Usage: node scripts/check-cycles.mjs [DIR...]
// (default: src dist/src). In TypeScript sources (.ts) every static import counts, `import type`
// included: a type-only circle still ties two modules together, and tsc erases it, so the built
// output cannot show it. In built output (.js) the imports that run at load time count. A dynamic
// import() is not followed in either. Prints each cycle found; exit status 1 if there is one.
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

// `import ... from "./x.js"`, `export ... from "./x.js"`, `import "./x.js"` (relative specifiers only);
// the part before `from` may span lines but not a quote or a semicolon, so it stays in one statement.
const IMPORT = /^\s*(?:import|export)\s(?:[^'";]*?\sfrom\s*)?["'](\.{1,2}\/[^"']+)["']/gm;

// The top folders of src/, lowest first: a module may import from its own folder or from one listed
// before it, never from one listed after it. Files directly in src/ (the public entry points) may
// import anything. The same rule holds in built output, which keeps the folders.
const LAYERS = [
  "util", "testing", "tensor", "backend", "autograd", "nn", "optim", "data", "checkpoint", "transport",
  "parallel", "pipeline", "sim", "report", "trace", "api", "train", "cli",
];

/** Imports from a lower folder to a higher one (or into a folder LAYERS does not list). */
function upwardImports(root, graph) {
  const top = (f) => { const parts = relative(root, f).split(/[\\/]/); return parts.length > 1 ? parts[0] : null; };
  const found = [];
  for (const [f, deps] of graph) {
    const from = top(f);
    if (from === null) continue;
    for (const g of deps) {
      const to = top(g);
      if (to === null || to === from || !graph.has(g)) continue;
      const [a, b] = [LAYERS.indexOf(from), LAYERS.indexOf(to)];
      if (a < 0 || b < 0 || b > a) found.push(`${relative(root, f)} -> ${relative(root, g)} (${from} may not import ${to}${a < 0 || b < 0 ? ": folder not in LAYERS" : ""})`);
    }
  }
  return found;
}

function modules(root) {
  const files = [];
  (function walk(dir) {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if ((name.endsWith(".ts") && !name.endsWith(".d.ts")) || name.endsWith(".js")) files.push(p);
    }
  })(root);
  // A .ts source names its imports by their .js output: map them back to the source.
  const target = (from, spec) => resolve(dirname(from), from.endsWith(".ts") ? spec.replace(/\.js$/, ".ts") : spec);
  return new Map(files.map((f) => [f, [...readFileSync(f, "utf8").matchAll(IMPORT)].map((m) => target(f, m[1]))]));
}

/** Every cycle a depth-first search closes with a back edge (each circle reported once, from where the search met it). */
function cycles(graph) {
  const state = new Map(); // 1: on the stack, 2: done
  const stack = [];
  const found = [];
  const visit = (f) => {
    state.set(f, 1);
    stack.push(f);
    for (const g of graph.get(f)) {
      if (!graph.has(g)) continue; // outside the walked tree
      if (state.get(g) === 1) found.push([...stack.slice(stack.indexOf(g)), g]);
      else if (!state.has(g)) visit(g);
    }
    stack.pop();
    state.set(f, 2);
  };
  for (const f of [...graph.keys()].sort()) if (!state.has(f)) visit(f);
  return found;
}

const roots = process.argv.length > 2 ? process.argv.slice(2) : ["src", "dist/src"];
let failed = false;
for (const dir of roots) {
  const root = resolve(dir);
  if (!existsSync(root)) { console.error(`check-cycles: ${dir} does not exist${dir.startsWith("dist") ? " (run npm run build first)" : ""}`); failed = true; continue; }
  const graph = modules(root);
  const found = cycles(graph);
  for (const c of found) console.error(`import cycle: ${c.map((f) => relative(root, f)).join(" -> ")}`);
  const upward = upwardImports(root, graph);
  for (const u of upward) console.error(`import against the folder layout: ${u}`);
  if (found.length || upward.length) failed = true;
  console.log(`check-cycles: ${dir}: ${graph.size} modules, ${found.length ? `${found.length} import cycle(s)` : "no import cycles"}, ` +
    `${upward.length ? `${upward.length} import(s) against the folder layout` : "imports follow the folder layout"}`);
}
process.exit(failed ? 1 : 0);
