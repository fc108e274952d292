// The loss the last stage computes: a built-in by name or a user's exported function, imported by
// every worker like the model. A user loss `(output, target) => Tensor` returns the micro-batch MEAN
// (PyTorch's default reduction); the stage weights it by rows_j / rows_total (src/pipeline/stage.ts).
import { mseLoss } from "../../autograd/index.js";
import type { Tensor } from "../../tensor/tensor.js";
import { fmt } from "../../tensor/shape.js";
import { CROSS_ENTROPY_SUM, type StageLoss, type Target } from "../stage.js";
import { describe, importFunction } from "./module-import.js";

export const LOSS_NAMES = ["cross-entropy", "mse"] as const;
export type LossName = (typeof LOSS_NAMES)[number];

/** A user loss: output and target of one micro-batch -> a scalar tensor, the micro-batch mean. */
export type LossFunction = (output: Tensor, target: Target) => Tensor;

/** Plain JSON: a built-in name or a module export (a function itself is allowed on inline only). */
export type LossSpec = LossName | { module: string; export?: string };

const MSE: StageLoss = {
  name: "mse",
  reduction: "mean",
  fn(out, t) {
    if (t instanceof Int32Array) throw new Error(`loss 'mse' needs float targets (a Tensor shaped like the output ${fmt(out.shape)}), got Int32Array class ids`);
    return mseLoss(out, t);
  },
};

/** The built-in loss named `name`. */
export function builtinLoss(name: string): StageLoss {
  if (name === "cross-entropy") return CROSS_ENTROPY_SUM;
  if (name === "mse") return MSE;
  throw new Error(`unknown loss '${name}'; valid: ${LOSS_NAMES.join(", ")}, a function (inline executor) or {module, export}`);
}

/** A user's function as the stage loss (mean reduction). */
export function functionLoss(fn: LossFunction, name = fn.name || "user loss"): StageLoss {
  return { name, reduction: "mean", fn };
}

/** Resolves a loss spec (importing a module's export); undefined = the built-in cross-entropy. */
export async function loadLoss(spec: LossSpec | undefined): Promise<StageLoss> {
  if (spec === undefined) return CROSS_ENTROPY_SUM;
  if (typeof spec === "string") return builtinLoss(spec);
  if (typeof spec !== "object" || spec === null || typeof spec.module !== "string") {
    throw new Error(`loss must be one of ${LOSS_NAMES.join(", ")}, a function (inline executor) or {module, export}, got ${describe(spec)}`);
  }
  const name = spec.export ?? "default";
  const fn = await importFunction(spec.module, name, "loss", "(output, target) => Tensor");
  return functionLoss(fn as LossFunction, name);
}
