// The asynchronous-method configuration: the CLI's asynchronous flags -> a validated AsyncConfig -> which
// weight policy and optimizer transforms each stage runs. A method is a combination, not a fork:
//   naive    : naive policy, plain optimizer
//   stash    : stash policy (PipeDream)
//   2bw      : 2bw policy (PipeDream-2BW)
//   pipemare : T1 (lr rescheduling, --pipemare-lr, default on) + T2 (discrepancy correction,
//              --pipemare-correction, default on: pipemare-correction policy, else naive)
//   pb       : momentum SGD at batch 1 with Spike Compensation (--spike-compensation, default on)
//              + Linear Weight Prediction (--weight-prediction, default on: predict policy)
// Toggles and constants of another method are errors, not silently ignored.
//
// The flag table below has the shape of src/cli/args.ts's FlagSpec (declared here structurally
// because src/pipeline must not import src/cli); toggles and constants have no default so that the
// parser can tell "not given" from "given".
import { DEFAULT_PIPEMARE_DECAY } from "./correct.js";
import { PREDICTION_MODES, type PredictionMode } from "./predict.js";
import type { PolicyName } from "./policy.js";

export type AsyncMethod = "naive" | "stash" | "2bw" | "pipemare" | "pb";
export const ASYNC_METHODS: readonly AsyncMethod[] = ["naive", "stash", "2bw", "pipemare", "pb"];

export interface AsyncConfig {
  method: AsyncMethod;
  /** Weight policy every stage runs. */
  policy: PolicyName;
  /** PipeMare T1: lr factor tau^-(1 - min(k/K, 1)). */
  pipemareLr: boolean;
  /** PipeMare T2 (policy pipemare-correction). */
  pipemareCorrection: boolean;
  /** PB: Spike Compensation with D = tau (the optimizer is SpikeCompensatedSGD; D = 0 when off). */
  spikeCompensation: boolean;
  /** PB: Linear Weight Prediction with horizon tau (policy predict). */
  weightPrediction: boolean;
  /** Epochs of synchronous training before going asynchronous. */
  warmupEpochs: number;
  /** T1 horizon K in optimizer steps; null = DEFAULT_ANNEAL_EPOCHS epochs (see annealSteps()). */
  annealSteps: number | null;
  /** T2: gamma = decay^(1/tau). */
  decay: number;
  /** T2: gamma set directly for every stage (overrides decay). */
  gamma: number | null;
  /** LWP form. */
  predictionMode: PredictionMode;
}

/** Structurally equal to src/cli/args.ts's FlagSpec. */
export interface AsyncFlagSpec {
  type: "string" | "int" | "number" | "bool" | "list";
  help: string;
  default?: string | number | boolean;
  choices?: readonly string[];
  min?: number;
  meta?: string;
}

export const DEFAULT_ANNEAL_EPOCHS = 2;

const ON_OFF = ["on", "off"] as const;

export const ASYNC_FLAGS = {
  "method": { type: "string", choices: ASYNC_METHODS, help: "asynchronous method (default: naive)" },
  "pipemare-lr": { type: "string", choices: ON_OFF, meta: "on|off", help: "pipemare: T1 learning-rate rescheduling (default: on)" },
  "pipemare-correction": { type: "string", choices: ON_OFF, meta: "on|off", help: "pipemare: T2 discrepancy correction (default: on)" },
  "spike-compensation": { type: "string", choices: ON_OFF, meta: "on|off", help: "pb: Spike Compensation, D = stage delay (default: on)" },
  "weight-prediction": { type: "string", choices: ON_OFF, meta: "on|off", help: "pb: Linear Weight Prediction, horizon = stage delay (default: on)" },
  "warmup-epochs": { type: "int", min: 0, meta: "K", help: "synchronous epochs before going asynchronous (default: 0)" },
  "pipemare-anneal-steps": { type: "int", min: 0, meta: "K", help: `pipemare T1 annealing horizon in steps (default: ${DEFAULT_ANNEAL_EPOCHS} epochs)` },
  "pipemare-decay": { type: "number", meta: "D", help: `pipemare T2: gamma = D^(1/tau), D in (0,1) (default: ${DEFAULT_PIPEMARE_DECAY})` },
  "pipemare-gamma": { type: "number", meta: "G", help: "pipemare T2: velocity decay gamma in [0,1) for every stage, instead of D^(1/tau)" },
  "weight-prediction-mode": { type: "string", choices: PREDICTION_MODES, help: "pb LWP: w - lr*D*v (velocity) or w + D*(w - w_prev) (difference) (default: velocity)" },
} as const satisfies Readonly<Record<string, AsyncFlagSpec>>;

/** Flag values as src/cli/args.ts's parseFlags returns them (or any plain record). */
export type AsyncFlagValues = Readonly<Record<string, string | number | boolean | readonly string[] | undefined>>;

/** Which method each toggle/constant belongs to (and, for constants, which toggle must be on). */
const OWNER: Readonly<Record<string, { method: AsyncMethod; needs?: keyof AsyncConfig; needsFlag?: string }>> = {
  "pipemare-lr": { method: "pipemare" },
  "pipemare-correction": { method: "pipemare" },
  "spike-compensation": { method: "pb" },
  "weight-prediction": { method: "pb" },
  "pipemare-anneal-steps": { method: "pipemare", needs: "pipemareLr", needsFlag: "pipemare-lr" },
  "pipemare-decay": { method: "pipemare", needs: "pipemareCorrection", needsFlag: "pipemare-correction" },
  "pipemare-gamma": { method: "pipemare", needs: "pipemareCorrection", needsFlag: "pipemare-correction" },
  "weight-prediction-mode": { method: "pb", needs: "weightPrediction", needsFlag: "weight-prediction" },
};

/** How errors name an option: the CLI's flag by default; the library passes its own spelling. */
export type OptionSpelling = (flag: string) => string;
const cliFlag: OptionSpelling = (flag) => `--${flag}`;

type FlagValue = string | number | boolean | readonly string[] | undefined;

function onOff(name: string, v: FlagValue): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === true || v === "on" || v === "true") return true;
  if (v === false || v === "off" || v === "false") return false;
  throw new Error(`${name} '${String(v)}' is not valid; choose one of: on, off`);
}

function num(name: string, v: FlagValue, integer: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : NaN;
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new Error(`${name} '${String(v)}' is not ${integer ? "an integer" : "a number"}`);
  }
  return n;
}

/**
 * Validates the flags of an asynchronous run and resolves each method's defaults. Unknown keys are
 * ignored (the record usually holds every flag of `pipewright train`). `spell` names an option in
 * errors (the CLI's `--flag` unless given).
 */
export function parseAsyncConfig(values: AsyncFlagValues, spell: OptionSpelling = cliFlag): AsyncConfig {
  const rawMethod = values["method"] ?? "naive";
  if (typeof rawMethod !== "string" || !ASYNC_METHODS.includes(rawMethod as AsyncMethod)) {
    throw new Error(`${spell("method")} '${String(rawMethod)}' is not valid; choose one of: ${ASYNC_METHODS.join(", ")}`);
  }
  const method = rawMethod as AsyncMethod;

  for (const [flag, owner] of Object.entries(OWNER)) {
    if (values[flag] !== undefined && owner.method !== method) {
      throw new Error(`${spell(flag)} applies to ${spell("method")} ${owner.method} only; got ${spell("method")} ${method}`);
    }
  }

  const toggle = (flag: string): boolean | undefined => onOff(spell(flag), values[flag]);
  const pipemareLr = method === "pipemare" && (toggle("pipemare-lr") ?? true);
  const pipemareCorrection = method === "pipemare" && (toggle("pipemare-correction") ?? true);
  const spikeCompensation = method === "pb" && (toggle("spike-compensation") ?? true);
  const weightPrediction = method === "pb" && (toggle("weight-prediction") ?? true);
  const toggles = { pipemareLr, pipemareCorrection, spikeCompensation, weightPrediction };

  for (const [flag, owner] of Object.entries(OWNER)) {
    if (values[flag] !== undefined && owner.needs && !toggles[owner.needs as keyof typeof toggles]) {
      throw new Error(`${spell(flag)} has no effect with ${spell(owner.needsFlag!)} off`);
    }
  }

  const number = (flag: string, integer: boolean): number | undefined => num(spell(flag), values[flag], integer);
  const warmupEpochs = number("warmup-epochs", true) ?? 0;
  if (warmupEpochs < 0) throw new Error(`${spell("warmup-epochs")} ${warmupEpochs} must be >= 0`);
  const annealSteps = number("pipemare-anneal-steps", true) ?? null;
  if (annealSteps !== null && annealSteps < 0) throw new Error(`${spell("pipemare-anneal-steps")} ${annealSteps} must be >= 0`);
  const decay = number("pipemare-decay", false) ?? DEFAULT_PIPEMARE_DECAY;
  if (!(decay > 0 && decay < 1)) throw new Error(`${spell("pipemare-decay")} ${decay} must be in (0, 1) (gamma = D^(1/tau))`);
  const gamma = number("pipemare-gamma", false) ?? null;
  if (gamma !== null && !(gamma >= 0 && gamma < 1)) throw new Error(`${spell("pipemare-gamma")} ${gamma} must be in [0, 1)`);
  if (gamma !== null && values["pipemare-decay"] !== undefined) {
    throw new Error(`${spell("pipemare-gamma")} and ${spell("pipemare-decay")} both set gamma; give one of them`);
  }
  const modeRaw = values["weight-prediction-mode"] ?? "velocity";
  if (typeof modeRaw !== "string" || !PREDICTION_MODES.includes(modeRaw as PredictionMode)) {
    throw new Error(`${spell("weight-prediction-mode")} '${String(modeRaw)}' is not valid; choose one of: ${PREDICTION_MODES.join(", ")}`);
  }

  const policy: PolicyName =
    method === "stash" ? "stash"
    : method === "2bw" ? "2bw"
    : pipemareCorrection ? "pipemare-correction"
    : weightPrediction ? "predict"
    : "naive";

  return { method, policy, ...toggles, warmupEpochs, annealSteps, decay, gamma, predictionMode: modeRaw as PredictionMode };
}

/** T1's horizon K in steps: the configured value, or DEFAULT_ANNEAL_EPOCHS epochs. */
export function annealSteps(cfg: AsyncConfig, stepsPerEpoch: number): number {
  if (cfg.annealSteps !== null) return cfg.annealSteps;
  if (!Number.isInteger(stepsPerEpoch) || stepsPerEpoch < 1) throw new Error(`stepsPerEpoch must be a positive integer, got ${stepsPerEpoch}`);
  return DEFAULT_ANNEAL_EPOCHS * stepsPerEpoch;
}

/** One line naming the method and its parts, for the start-of-run printout. */
export function describeConfig(cfg: AsyncConfig): string {
  const parts: string[] = [`policy ${cfg.policy}`];
  if (cfg.method === "pipemare") {
    parts.push(`T1 lr rescheduling ${cfg.pipemareLr ? `on (K=${cfg.annealSteps ?? `${DEFAULT_ANNEAL_EPOCHS} epochs`})` : "off"}`);
    parts.push(`T2 correction ${cfg.pipemareCorrection ? `on (${cfg.gamma !== null ? `gamma=${cfg.gamma}` : `gamma=D^(1/tau), D=${cfg.decay}`})` : "off"}`);
  }
  if (cfg.method === "pb") {
    parts.push(`spike compensation ${cfg.spikeCompensation ? "on (D=tau)" : "off"}`);
    parts.push(`weight prediction ${cfg.weightPrediction ? `on (${cfg.predictionMode}, D=tau)` : "off"}`);
  }
  if (cfg.warmupEpochs > 0) parts.push(`${cfg.warmupEpochs} synchronous warm-up epoch(s)`);
  return `${cfg.method}: ${parts.join(", ")}`;
}
