// Optimizer by name, for the CLI (--optimizer sgd|adamw) and for workers rebuilding a stage's optimizer.
import type { Tensor } from "../tensor/tensor.js";
import { SGD, type SgdOptions } from "./sgd.js";
import { AdamW, type AdamWOptions } from "./adamw.js";
import type { NamedParams, ParamGroupInput } from "./optimizer.js";

export const OPTIMIZER_NAMES = ["sgd", "adamw"] as const;
export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];

/** Plain-JSON optimizer configuration; fields not used by the chosen optimizer are errors. */
export type OptimizerConfig =
  | ({ name: "sgd" } & Partial<SgdOptions> & { lr: number })
  | ({ name: "adamw" } & Partial<AdamWOptions>);

export function createOptimizer(config: OptimizerConfig,
  params: readonly Tensor[] | NamedParams | readonly ParamGroupInput<SgdOptions & AdamWOptions>[]): SGD | AdamW {
  const { name, ...options } = config;
  const allowed = name === "sgd" ? ["lr", "momentum", "dampening", "weightDecay", "nesterov"]
    : name === "adamw" ? ["lr", "betas", "eps", "weightDecay"] : null;
  if (!allowed) throw new Error(`unknown optimizer '${String(name)}'; valid: ${OPTIMIZER_NAMES.join(", ")}`);
  for (const k of Object.keys(options)) {
    if (!allowed.includes(k)) throw new Error(`optimizer '${name}' has no option '${k}'; valid: ${allowed.join(", ")}`);
  }
  return name === "sgd"
    ? new SGD(params, options as Partial<SgdOptions> & { lr: number })
    : new AdamW(params, options as Partial<AdamWOptions>);
}
