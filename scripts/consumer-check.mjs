// Runs examples (a)-(c) in the consumer project (scripts/test-consumer copies this file there) on
// small data and checks their final JSON lines: losses fall, and (a) on threads equals (a) inline
// bit for bit (same losses, same SHA-256 of the weights). Exits non-zero with the reason otherwise.
import { execFileSync } from "node:child_process";

function run(script, args) {
  const out = execFileSync(process.execPath, [`examples/${script}`, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const lines = out.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

function check(ok, what) {
  if (!ok) { console.error(`consumer-check: FAILED: ${what}`); process.exit(1); }
  console.error(`consumer-check: ok: ${what}`);
}

const a = run("regression-mlp.mjs", ["--steps", "30", "--executor", "threads"]);
const aInline = run("regression-mlp.mjs", ["--steps", "30", "--executor", "inline"]);
check(a.backend === "native", `(a) runs on the native addon built at install (backend: ${a.backend})`);
check(a.last_loss < a.first_loss / 2, `(a) regression MLP loss falls: ${a.first_loss} -> ${a.last_loss}`);
check(a.weights_sha256 === aInline.weights_sha256, `(a) threads weights == inline weights bit for bit (${a.weights_sha256})`);
check(JSON.stringify(a.losses) === JSON.stringify(aInline.losses), "(a) threads losses == inline losses bit for bit");

const b = run("char-transformer.mjs", ["--steps", "20", "--layers", "2", "--width", "32", "--context", "16"]);
check(b.last_loss < b.first_loss, `(b) transformer LM loss falls: ${b.first_loss} -> ${b.last_loss}`);

const c = run("pipemare.mjs", ["--epochs", "6"]);
check(c.last_loss < c.first_loss, `(c) PipeMare loss falls: ${c.first_loss} -> ${c.last_loss}`);
console.log(JSON.stringify({ a: { first: a.first_loss, last: a.last_loss, sha256: a.weights_sha256 }, b: { first: b.first_loss, last: b.last_loss }, c: { first: c.first_loss, last: c.last_loss } }));
