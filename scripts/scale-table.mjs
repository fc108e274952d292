#!/usr/bin/env node
// The scaling table from scripts/bench-scale's JSON lines: per batch, workers and schedule, the
// samples/s on threads and on processes, the schedule's ideal speed-up over one worker on the same
// micro-batches (the simulator's, from measured per-stage costs: an uneven cut counts), C (what W
// independent copies of the work reach together, in units of one), the ceiling ideal x C / W, and
// each executor's efficiency against that ceiling; then the 2-rank run's predictions for 8 and 16
// ranks next to the measured runs (predictions are labelled, never used as measurements).
//   node scripts/scale-table.mjs DIR
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2];
if (!dir || !existsSync(dir)) { console.error(`scale-table: give the results directory of scripts/bench-scale (got ${dir ?? "nothing"})`); process.exit(2); }
const lines = (f) => existsSync(join(dir, f)) ? readFileSync(join(dir, f), "utf8").split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)) : [];
const f2 = (x) => (x === null || x === undefined || Number.isNaN(x) ? "" : Number(x).toFixed(2));
const f0 = (x) => (x === null || x === undefined || Number.isNaN(x) ? "" : Math.round(x).toString());
const sum = (xs) => xs.reduce((a, b) => a + b, 0);

const files = readdirSync(dir);
const batches = [...new Set(files.flatMap((f) => /-b(\d+)\.jsonl$/.exec(f)?.[1] ?? []))].map(Number).sort((a, b) => a - b);
const widths = [...new Set(files.flatMap((f) => /^threads-w(\d+)-/.exec(f)?.[1] ?? []))].map(Number).sort((a, b) => a - b);
const out = [];
if (existsSync(join(dir, "machine.txt"))) out.push("```", readFileSync(join(dir, "machine.txt"), "utf8").trim(), "```", "");
const predictions = [];
for (const B of batches) {
  const single = lines(`capacity-w1-b${B}.jsonl`)[0]?.samples_per_s;
  out.push(`### batch ${B}, 16 micro-batches`, "",
    "| workers | schedule | threads samples/s | processes samples/s | ideal | C threads | C processes | threads / ceiling | processes / ceiling | hold µs (median) |",
    "|---|---|---|---|---|---|---|---|---|---|");
  for (const W of widths) {
    const th = lines(`threads-w${W}-b${B}.jsonl`), pr = lines(`processes-w${W}-b${B}.jsonl`);
    const micro = th.find((l) => l.schedule === "none" && l.microbatches > 1)?.samples_per_s;
    const cT = th.find((l) => l.bench === "parallel_capacity")?.throughput_ratio;
    const ranks = lines(`capacity-w${W}-b${B}.jsonl`).map((l) => l.samples_per_s);
    const cP = single && ranks.length === W ? sum(ranks) / single : NaN;
    for (const t of th.filter((l) => l.workers === W && l.ideal && l.schedule !== "none" && l.samples_per_s !== undefined && l.bench === undefined)) {
      const p = pr.find((l) => l.schedule === t.schedule && l.processes_samples_per_s !== undefined);
      const sim = pr.find((l) => l.bench === "sim" && l.schedule === t.schedule && l.ranks === W && !l.prediction);
      const effT = micro && cT ? t.samples_per_s / micro / (t.ideal * cT / W) : NaN;
      const effP = micro && p && cP ? p.processes_samples_per_s / micro / (t.ideal * cP / W) : NaN;
      out.push(`| ${W} | ${t.schedule} | ${f0(t.samples_per_s)} | ${f0(p?.processes_samples_per_s)} | ${f2(t.ideal)} | ${f2(cT)} | ${f2(cP)} | ${f2(effT)} | ${f2(effP)} | ${sim ? sim.hold_us : ""} |`);
      if (W === Math.min(...widths)) {
        for (const q of pr.filter((l) => l.prediction && l.schedule === t.schedule)) predictions.push({ B, ...q });
      }
    }
  }
  out.push("");
}
if (predictions.length) {
  out.push("### predictions from the smallest run (simulator, not measured) next to the measured runs", "",
    "| batch | schedule | ranks | predicted samples/s | measured processes samples/s | error |", "|---|---|---|---|---|---|");
  for (const q of predictions) {
    const m = lines(`processes-w${q.ranks}-b${q.B}.jsonl`).find((l) => l.schedule === q.schedule && l.processes_samples_per_s !== undefined);
    out.push(`| ${q.B} | ${q.schedule} | ${q.ranks} | ${f0(q.predicted_samples_per_s)} | ${m ? f0(m.processes_samples_per_s) : "not measured"} | ${m ? `${((q.predicted_samples_per_s / m.processes_samples_per_s - 1) * 100).toFixed(0)}%` : ""} |`);
  }
}
console.log(out.join("\n"));
