// Which addon build a CPU gets (pure, from real CPUs' /proc/cpuinfo flags), how benchmark output
// names the machine, and the CLI on a CPU the builds cannot run: one line naming the missing
// features and exit code 1, never a crash (PIPEWRIGHT_CPU_FLAGS makes the loader see another CPU).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  chooseBuilds, cpuFlags, cpuLabel, describeCpu, missingFeatures, ISA_BUILDS, parseCpuFlags, type BuildChoice, type IsaBuild,
} from "../src/backend/cpu-features.js";
// A hang guard, not a speed limit: a loaded 2-core machine has taken over 60 s for these small runs.
const HANG_GUARD_MS = 180_000;

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

// Flags lines of real CPUs. Zen 4 (this project's AVX-512 machine, an EPYC VM):
const ZEN4 = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx " +
  "mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid extd_apicid tsc_known_freq pni " +
  "pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor " +
  "lahf_lm cmp_legacy cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw topoext vmmcall fsgsbase tsc_adjust bmi1 avx2 smep " +
  "bmi2 erms invpcid avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt " +
  "xsavec xgetbv1 xsaves avx512_bf16 clzero xsaveerptr arat avx512vbmi umip avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni " +
  "avx512_bitalg avx512_vpopcntdq rdpid fsrm";
// Zen 3 / an AVX2-only EPYC: the same but without any avx512 flag.
const AVX2_ONLY = ZEN4.split(" ").filter((f) => !f.startsWith("avx512")).join(" ");
// Sandy Bridge: AVX, but none of AVX2, FMA, F16C, BMI1/2, LZCNT (abm) or MOVBE.
const SANDY_BRIDGE = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 " +
  "ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc arch_perfmon pebs bts rep_good nopl xtopology nonstop_tsc aperfmperf " +
  "pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic popcnt " +
  "tsc_deadline_timer aes xsave avx lahf_lm epb tpr_shadow vnmi flexpriority ept vpid xsaveopt dtherm ida arat pln pts";
const SANDY_LACKS = ["avx2", "fma", "f16c", "bmi1", "bmi2", "abm", "movbe"];
// Knights Landing has AVX-512F and CD but not BW, DQ or VL, which x86-64-v4 needs.
const KNL = AVX2_ONLY + " avx512f avx512cd avx512pf avx512er";

const flags = (s: string): Set<string> => new Set(s.split(" "));
const isas = (c: BuildChoice): string[] => {
  assert.ok(c.ok, c.ok ? "" : c.reason);
  return c.builds.map((b) => b.isa);
};
const reason = (c: BuildChoice): string => {
  assert.ok(!c.ok, "expected no build");
  return c.reason;
};
const build = (isa: string): IsaBuild => ISA_BUILDS.find((b) => b.isa === isa) ?? assert.fail(`no build ${isa}`);

test("parseCpuFlags reads the first processor's flags line of /proc/cpuinfo", () => {
  const text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2  fma\n\n" +
    "processor\t: 1\nflags\t\t: fpu sse\n";
  assert.deepEqual([...parseCpuFlags(text)], ["fpu", "avx2", "fma"]);
  assert.equal(parseCpuFlags("processor : 0\nFeatures : fp asimd\n").size, 0, "an arm64 cpuinfo has no x86 flags");
});

test("the best build each CPU can run comes first; a build is offered only if the CPU has every flag its -march uses", () => {
  assert.deepEqual(isas(chooseBuilds(flags(ZEN4))), ["avx512", "avx2"]);
  assert.deepEqual(isas(chooseBuilds(flags(AVX2_ONLY))), ["avx2"]);
  assert.deepEqual(isas(chooseBuilds(flags(KNL))), ["avx2"], "AVX-512F without BW/DQ/VL is not x86-64-v4");
  for (const missing of SANDY_LACKS) {
    const r = reason(chooseBuilds(flags(AVX2_ONLY.split(" ").filter((f) => f !== missing).join(" "))));
    assert.match(r, new RegExp(`^this CPU lacks ${missing}, which the lowest native build \\(AVX2, -march=x86-64-v3\\) needs; use --backend reference$`));
  }
});

test("a CPU without AVX2 is told every feature it lacks, and to use the reference backend", () => {
  assert.equal(reason(chooseBuilds(flags(SANDY_BRIDGE))),
    `this CPU lacks ${SANDY_LACKS.join(", ")}, which the lowest native build (AVX2, -march=x86-64-v3) needs; use --backend reference`);
});

test("PIPEWRIGHT_ISA forces one build, only one this CPU can run; bad values are named", () => {
  assert.deepEqual(isas(chooseBuilds(flags(ZEN4), "avx2")), ["avx2"]);
  assert.deepEqual(isas(chooseBuilds(flags(ZEN4), "avx512")), ["avx512"]);
  assert.deepEqual(isas(chooseBuilds(flags(ZEN4), "")), ["avx512", "avx2"], "empty means unset");
  assert.equal(reason(chooseBuilds(flags(AVX2_ONLY), "avx512")), "PIPEWRIGHT_ISA=avx512 selects the AVX-512 build (-march=x86-64-v4), " +
    "but this CPU lacks avx512f, avx512bw, avx512cd, avx512dq, avx512vl; choose a lower build or unset PIPEWRIGHT_ISA");
  assert.match(reason(chooseBuilds(flags(SANDY_BRIDGE), "avx2")), /selects the AVX2 build .* lacks avx2, fma/);
  assert.equal(reason(chooseBuilds(flags(ZEN4), "AVX2")), "PIPEWRIGHT_ISA='AVX2' is not a native build; valid: avx512, avx2");
});

test("ISA_BUILDS are binding.gyp's targets with their -march", () => {
  // gyp files are Python literals; ours stays JSON apart from whole-line # comments.
  const text = readFileSync(`${ROOT}binding.gyp`, "utf8").replace(/^\s*#.*$/gm, "");
  const gyp = JSON.parse(text) as { targets: { target_name: string; cflags_cc: string[] }[] };
  const targets = gyp.targets.map((t) => [t.target_name, t.cflags_cc.find((f) => f.startsWith("-march="))]);
  assert.deepEqual(targets.sort(), ISA_BUILDS.map((b) => [b.target, `-march=${b.march}`]).sort());
});

test("describeCpu names the model, the ISA the kernels ran with (and oneDNN's cap when it differs), the cores", () => {
  const z = flags(ZEN4);
  assert.deepEqual(describeCpu("AMD EPYC", 2, z, build("avx512")), { model: "AMD EPYC", isa: "AVX-512", cores: 2 });
  assert.equal(describeCpu("AMD EPYC", 2, z, build("avx2"), { ONEDNN_MAX_CPU_ISA: "AVX2" }).isa, "AVX2");
  assert.equal(describeCpu("AMD EPYC", 2, z, build("avx2"), { DNNL_MAX_CPU_ISA: "avx2" }).isa, "AVX2", "older name, any case");
  assert.equal(describeCpu("AMD EPYC", 2, z, build("avx512"), { ONEDNN_MAX_CPU_ISA: "AVX2" }).isa, "AVX-512 build, oneDNN AVX2");
  assert.equal(describeCpu("AMD EPYC", 2, z, build("avx2")).isa, "AVX2 build, oneDNN AVX-512");
  assert.equal(describeCpu("AMD EPYC", 2, z, build("avx512"), { ONEDNN_MAX_CPU_ISA: "AVX512_CORE_BF16" }).isa, "AVX-512");
  assert.equal(describeCpu("AMD EPYC", 2, z, build("avx512"), { ONEDNN_MAX_CPU_ISA: "ALL" }).isa, "AVX-512");
  assert.equal(describeCpu("X", 8, flags(AVX2_ONLY), build("avx2"), { ONEDNN_MAX_CPU_ISA: "AVX512_CORE" }).isa, "AVX2",
    "a cap above the CPU changes nothing");
  assert.equal(describeCpu("Old", 4, flags(SANDY_BRIDGE), null).isa, "AVX", "no addon: the CPU's best");
  assert.equal(cpuLabel({ model: "Intel Xeon", isa: "AVX-512", cores: 2 }), "Intel Xeon, AVX-512, 2 cores");
  assert.equal(cpuLabel({ model: "M", isa: "AVX2", cores: 1 }), "M, AVX2, 1 core");
});

function cliEnv(env: Record<string, string>, ...args: string[]): { code: number | null; signal: string | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8", timeout: HANG_GUARD_MS, env: { ...process.env, ...env } });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}
const TRAIN = ["train", "--model", "mlp", "--data", "slice", "--limit", "40", "--batch", "40", "--epochs", "1"];

test("--backend native on a CPU without AVX2: exit 1 and one line naming the missing features, no crash", () => {
  const r = cliEnv({ PIPEWRIGHT_CPU_FLAGS: SANDY_BRIDGE, PIPEWRIGHT_ISA: "" }, ...TRAIN, "--backend", "native");
  assert.equal(r.signal, null);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr, `pipewright: native backend unavailable: this CPU lacks ${SANDY_LACKS.join(", ")}, ` +
    "which the lowest native build (AVX2, -march=x86-64-v3) needs; use --backend reference\n");
  assert.equal(r.stdout, "");
});

test("PIPEWRIGHT_ISA=avx512 on an AVX2-only CPU: exit 1 naming the AVX-512 features, never loading that build", () => {
  const r = cliEnv({ PIPEWRIGHT_CPU_FLAGS: AVX2_ONLY, PIPEWRIGHT_ISA: "avx512" }, ...TRAIN, "--backend", "native");
  assert.equal(r.signal, null);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^pipewright: native backend unavailable: PIPEWRIGHT_ISA=avx512 selects the AVX-512 build .* lacks avx512f, avx512bw, avx512cd, avx512dq, avx512vl;/);
});

test("without --backend, a CPU without AVX2 trains on the reference backend after one warning line", () => {
  const r = cliEnv({ PIPEWRIGHT_CPU_FLAGS: SANDY_BRIDGE, PIPEWRIGHT_ISA: "", PIPEWRIGHT_BACKEND: "" }, ...TRAIN);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^pipewright: native addon not loaded \(this CPU lacks avx2, fma, .*\); using the slow reference backend$/m);
  assert.match(r.stdout, /reference backend/);
});

// Runs the AVX2 build for real, so only where this CPU (its real flags) can run it.
const v3 = `${ROOT}build/Release/${build("avx2").target}.node`;
const realFlags = cpuFlags({});
const v3skip = !existsSync(v3) ? `${v3} not built` : realFlags === null || missingFeatures(build("avx2"), realFlags).length > 0 ?
  "this CPU cannot run the AVX2 build" : false;
test("PIPEWRIGHT_ISA=avx2 loads the AVX2 build, and bench output says so", { skip: v3skip }, () => {
  const r = cliEnv({ PIPEWRIGHT_ISA: "avx2", PIPEWRIGHT_CPU_FLAGS: "", ONEDNN_MAX_CPU_ISA: "AVX2" },
    "bench", "engine", "--json", "--models", "mlp", "--steps", "5", "--warmup", "0", "--backend", "native");
  assert.equal(r.code, 0, r.stderr);
  const o = JSON.parse(r.stdout.trim()) as { backend: string; cpu: { model: string; isa: string; cores: number } };
  assert.equal(o.backend, "native");
  assert.equal(o.cpu.isa, "AVX2");
  assert.ok(o.cpu.model.length > 0 && Number.isInteger(o.cpu.cores) && o.cpu.cores >= 1, JSON.stringify(o.cpu));
});
