// The library's options for the asynchronous methods: typed camelCase keys, checked and named in
// the library's words, then handed to the same validation as the CLI's flags.
import { parseAsyncConfig, type AsyncConfig, type AsyncMethod } from "../pipeline/weights/config.js";
import type { PredictionMode } from "../pipeline/weights/predict.js";

/** schedule "async": the method and its switches (each method's own; another's is an error). */
export interface AsyncOptions {
  /** naive (default), stash (PipeDream), 2bw (PipeDream-2BW), pipemare, pb (Pipelined Backpropagation). */
  method?: AsyncMethod;
  /** pipemare: T1 learning-rate rescheduling (default true). */
  pipemareLr?: boolean;
  /** pipemare: T2 discrepancy correction (default true). */
  pipemareCorrection?: boolean;
  /** pipemare T1: annealing horizon in optimizer steps (default: two windows). */
  pipemareAnnealSteps?: number;
  /** pipemare T2: gamma = decay^(1/tau), decay in (0, 1). */
  pipemareDecay?: number;
  /** pipemare T2: gamma in [0, 1) for every stage instead. */
  pipemareGamma?: number;
  /** pb: Spike Compensation (default true). */
  spikeCompensation?: boolean;
  /** pb: Linear Weight Prediction (default true). */
  weightPrediction?: boolean;
  /** pb: w - lr*D*v (velocity, default) or w + D*(w - w_prev) (difference). */
  weightPredictionMode?: PredictionMode;
}

const KEYS: Readonly<Record<keyof AsyncOptions, string>> = {
  method: "method", pipemareLr: "pipemare-lr", pipemareCorrection: "pipemare-correction",
  pipemareAnnealSteps: "pipemare-anneal-steps", pipemareDecay: "pipemare-decay", pipemareGamma: "pipemare-gamma",
  spikeCompensation: "spike-compensation", weightPrediction: "weight-prediction", weightPredictionMode: "weight-prediction-mode",
};
const CAMEL = new Map(Object.entries(KEYS).map(([camel, flag]) => [flag, camel]));

/** Validates `async` options into the method's configuration; errors name `async.key`. */
export function asyncConfigOf(o: AsyncOptions): AsyncConfig {
  if (typeof o !== "object" || o === null) throw new Error(`createPipeline: async must be an object like {method: "pipemare"}, got ${JSON.stringify(o)}`);
  const flags: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue;
    const flag = KEYS[k as keyof AsyncOptions];
    if (!flag) throw new Error(`createPipeline: async.${k} is not an option; the options are ${Object.keys(KEYS).join(", ")}`);
    flags[flag] = v as string | number | boolean;
  }
  try {
    return parseAsyncConfig(flags, (flag) => `async.${CAMEL.get(flag) ?? flag}`);
  } catch (e) {
    throw new Error(`createPipeline: ${(e as Error).message}`);
  }
}
