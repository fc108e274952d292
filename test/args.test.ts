// The flag parser every command shares (src/cli/args.ts): values typed from the command's spec,
// defaults, lists, aliases, the split of launch's own flags from the command it wraps, and the
// usage errors that name the bad value and what is allowed. The expected values are written out
// by hand; launch's reading of a wrapped train command is checked through the compiled CLI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { type CommandSpec, helpText, parseFlags, parseWrapper, UsageError, type FlagValues } from "../src/cli/args.js";
import { launchCommand, prepareTrain } from "../src/cli/launch.js";

const demo = {
  name: "demo",
  summary: "a command for the parser's tests",
  flags: {
    steps: { type: "int", min: 1, default: 3, help: "steps", meta: "N" },
    rate: { type: "number", min: 0, help: "rate", meta: "X" },
    mode: { type: "string", choices: ["fast", "slow"], default: "fast", help: "mode" },
    out: { type: "string", help: "output file", meta: "FILE" },
    parts: { type: "list", default: "a,b", help: "parts", meta: "P,P" },
    verbose: { type: "bool", help: "talk more" },
    ranks: { type: "int", min: 1, aliases: ["-r"], help: "ranks", meta: "R" },
  },
} as const satisfies CommandSpec;
type Demo = FlagValues<typeof demo.flags>;

const usage = (re: RegExp) => (e: unknown): boolean => e instanceof UsageError && re.test(e.message);

test("values come back with the spec's types; defaults fill the flags not given", () => {
  const f: Demo = parseFlags(demo, []);
  assert.deepEqual({ ...f }, { steps: 3, mode: "fast", parts: ["a", "b"] });
  const g = parseFlags(demo, ["--steps", "7", "--rate=0.25", "--mode", "slow", "--out", "x.json", "--verbose", "--parts", " p , q,,r "]);
  assert.deepEqual({ ...g }, { steps: 7, rate: 0.25, mode: "slow", out: "x.json", verbose: true, parts: ["p", "q", "r"] });
  // The types the compiler infers (each line fails to compile if the inference regresses).
  const steps: number = g.steps;
  const mode: "fast" | "slow" = g.mode;
  const parts: string[] = g.parts;
  const rate: number | undefined = g.rate;
  const verbose: boolean | undefined = g.verbose;
  assert.deepEqual([steps, mode, parts.length, rate, verbose], [7, "slow", 3, 0.25, true]);
  // @ts-expect-error a flag without a default may be undefined
  const out: string = g.out;
  assert.equal(out, "x.json");
  // @ts-expect-error no such flag
  assert.equal(g.nope, undefined);
});

test("the last value of a flag given twice wins; bool flags take =true|false|on|off", () => {
  assert.equal(parseFlags(demo, ["--steps", "2", "--steps=5"]).steps, 5);
  assert.equal(parseFlags(demo, ["--verbose=off"]).verbose, false);
  assert.equal(parseFlags(demo, ["--verbose=on"]).verbose, true);
  assert.throws(() => parseFlags(demo, ["--verbose=maybe"]), usage(/^--verbose=maybe: expected true\|false\|on\|off$/));
});

test("a bad int, number or choice names the value and what is allowed", () => {
  assert.throws(() => parseFlags(demo, ["--steps", "2.5"]), usage(/^--steps '2\.5' is not an integer$/));
  assert.throws(() => parseFlags(demo, ["--steps", "ten"]), usage(/^--steps 'ten' is not an integer$/));
  assert.throws(() => parseFlags(demo, ["--steps", "0"]), usage(/^--steps 0 is too small; it must be at least 1$/));
  assert.throws(() => parseFlags(demo, ["--rate", "fast"]), usage(/^--rate 'fast' is not a number$/));
  assert.throws(() => parseFlags(demo, ["--rate="]), usage(/^--rate '' is not a number$/));
  assert.throws(() => parseFlags(demo, ["--mode", "medium"]), usage(/^--mode 'medium' is not valid; choose one of: fast, slow$/));
  // A list flag with choices checks every item, and wants at least one.
  const picks = { name: "picks", summary: "", flags: { kinds: { type: "list", choices: ["a", "b"], default: "a", help: "kinds" } } } as const satisfies CommandSpec;
  const kinds: ("a" | "b")[] = parseFlags(picks, ["--kinds", "b,a"]).kinds;
  assert.deepEqual(kinds, ["b", "a"]);
  assert.throws(() => parseFlags(picks, ["--kinds", "a,c"]), usage(/^--kinds 'c' is not valid; choose from a, b$/));
  assert.throws(() => parseFlags(picks, ["--kinds", ","]), usage(/^--kinds '' is not valid; choose from a, b$/));
  assert.throws(() => parseFlags(demo, ["--out"]), usage(/^--out needs a value \(output file\)$/));
  assert.throws(() => parseFlags(demo, ["--out", "--verbose"]), usage(/^--out needs a value/));
});

test("an unknown flag or a stray argument names the valid flags", () => {
  assert.throws(() => parseFlags(demo, ["--step", "2"]),
    usage(/^pipewright demo: unknown flag --step; valid flags: --steps, --rate, --mode, --out, --parts, --verbose, --ranks, --help$/));
  // Names inherited from Object.prototype are not flags.
  assert.throws(() => parseFlags(demo, ["--constructor", "x"]), usage(/unknown flag --constructor/));
  assert.throws(() => parseFlags(demo, ["steps"]), usage(/^pipewright demo: unexpected argument 'steps'; flags start with --/));
});

test("--help stops parsing; aliases stand for their flag and are not listed in --help", () => {
  assert.equal(parseFlags(demo, ["--help", "--bogus"]).help, true);
  assert.equal(parseFlags(demo, ["-h"]).help, true);
  assert.equal(parseFlags(demo, ["-r", "4"]).ranks, 4);
  assert.throws(() => parseFlags(demo, ["-r", "x"]), usage(/^--ranks 'x' is not an integer$/));
  const help = helpText(demo);
  assert.match(help, /^ {2}--ranks R +ranks$/m);
  assert.match(help, /^ {2}--mode fast\|slow +mode \(default: fast\)$/m);
  assert.doesNotMatch(help, /-r\b/);
});

test("launch: its own flags before --, the wrapped command after it untouched", () => {
  const a = parseWrapper(launchCommand, ["-n", "2", "--dry-run", "--", "train", "--model", "mlp", "--", "-n", "9"]);
  assert.deepEqual([a.flags.n, a.flags["dry-run"], a.flags["max-restarts"]], [2, true, 0]);
  assert.deepEqual(a.command, ["train", "--model", "mlp", "--", "-n", "9"]);
  assert.equal(parseWrapper(launchCommand, ["-np", "3", "--", "node", "x.mjs"]).flags.n, 3);
  assert.deepEqual(parseWrapper(launchCommand, ["-n", "2"]).command, []);
  // A flag of the wrapped command before -- is launch's unknown flag.
  assert.throws(() => parseWrapper(launchCommand, ["-n", "2", "--model", "mlp", "--", "train"]), usage(/^pipewright launch: unknown flag --model; valid flags: --n, /));
  assert.throws(() => parseWrapper(launchCommand, ["-n", "2", "--bind", "numa", "--", "train"]), usage(/^--bind 'numa' is not valid; choose one of: core, none, socket$/));
});

test("launch reads the wrapped train command with train's own spec", () => {
  const train = ["train", "--model", "mlp", "--schedule", "1f1b", "--stages", "2"];
  assert.deepEqual(prepareTrain(2, train), [...train, "--executor", "processes"]);
  assert.deepEqual(prepareTrain(4, [...train, "--workers=2", "--replicas", "2", "--executor", "processes"]),
    [...train, "--workers=2", "--replicas", "2", "--executor", "processes"]);
  assert.throws(() => prepareTrain(3, [...train, "--replicas", "2"]),
    usage(/^launch -n 3 does not match the pipeline: 2 worker\(s\) x 1 tensor rank\(s\) \(--tp\) x 2 replica\(s\) = 4 rank\(s\); use -n 4$/));
  assert.deepEqual(prepareTrain(8, [...train, "--tp", "2", "--replicas", "2"]).slice(-2), ["--executor", "processes"]);
  assert.throws(() => prepareTrain(4, [...train, "--tp", "2", "--replicas", "2"]),
    usage(/^launch -n 4 does not match the pipeline: 2 worker\(s\) x 2 tensor rank\(s\) \(--tp\) x 2 replica\(s\) = 8 rank\(s\); use -n 8$/));
  // A V schedule holds two stages per worker: --stages 4 runs on 2 ranks (x replicas).
  const v = ["train", "--model", "mlp", "--schedule", "zb-v", "--stages", "4"];
  assert.deepEqual(prepareTrain(2, v), [...v, "--executor", "processes"]);
  assert.deepEqual(prepareTrain(4, [...v, "--schedule", "dualpipev", "--replicas", "2"]).slice(-2), ["--executor", "processes"]);
  assert.throws(() => prepareTrain(4, v), usage(/^launch -n 4 does not match the pipeline: 2 worker\(s\) x 1 tensor rank\(s\) \(--tp\) x 1 replica\(s\) = 2 rank\(s\); use -n 2$/));
  assert.throws(() => prepareTrain(2, [...v, "--stages", "3"]), usage(/^a V schedule needs an even stage count >= 2 .*got stages=3$/));
  assert.throws(() => prepareTrain(3, [...v, "--workers", "3"]), usage(/^zb-v runs 4 stages on 2 workers .*got workers=3$/));
  // A freeze run's rank count is its --workers, not its --stages.
  assert.deepEqual(prepareTrain(3, ["train", "--model", "vit", "--freeze", "--stages", "2"]).slice(-2), ["--executor", "processes"]);
  assert.throws(() => prepareTrain(2, [...train, "--executor", "threads"]), usage(/the command says --executor threads$/));
  assert.throws(() => prepareTrain(2, [...train, "--stages", "two"]), usage(/^--stages 'two' is not an integer$/));
  assert.throws(() => prepareTrain(2, [...train, "--stage", "2"]), usage(/^pipewright train: unknown flag --stage; /));
});

test("launch through the CLI: a bad wrapped train flag exits 2 before mpirun, naming it", () => {
  const main = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  const r = spawnSync(process.execPath, [main, "launch", "-n", "2", "--dry-run", "--", "train", "--model", "mlp", "--stages", "2", "--bogus"], { encoding: "utf8" });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^pipewright train: unknown flag --bogus; valid flags: /);
  assert.equal(r.stdout, "");
});
