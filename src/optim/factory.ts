// The one optimizer factory: by name, from plain JSON (the CLI's --optimizer sgd|adamw, every pipeline
// stage and data-parallel replica rebuilding its optimizer in a worker, createPipeline's option).
import type { Tensor } from "../tensor/tensor.js";
import { SGD, type SgdOptions } from "./sgd.js";
import { AdamW, type AdamWOptions } from "./adamw.js";
import type { NamedParams, ParamGroupInput } from "./optimizer.js";

export const OPTIMIZER_NAMES = ["sgd", "adamw"] as const;
export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];

/**
 * Plain-JSON optimizer configuration (the one shape everywhere); fields not used by the chosen
 * optimizer are errors. Omitted hyper-parameters take torch's defaults.
 */
export type OptimizerConfig =
  | ({ name: "sgd" } & Partial<SgdOptions> & { lr: number })
  | ({ name: "adamw" } & Partial<AdamWOptions> & { lr: number });

export function createOptimizer(config: OptimizerConfig,
  params: readonly Tensor[] | NamedParams | readonly ParamGroupInput<SgdOptions & AdamWOptions>[]): SGD | AdamW {
  if (typeof config !== "object" || config === null) throw new Error(`optimizer config must be an object like {"name": "sgd", "lr": 0.1}, got ${JSON.stringify(config)}`);
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
