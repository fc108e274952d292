// The model of example (a), in a module of its own: every worker imports this file (and only it) for
// `build`, so the training script needs no isMainThread guard.
import { Linear, ReLU, Rng } from "pipewright";

export const FEATURES = 8;

/** The model: Linear -> ReLU -> Linear -> ReLU -> Linear, as a list of layers the pipeline cuts. */
export function build({ hidden = 64, seed = 0 } = {}) {
  const rng = new Rng(seed);
  return [new Linear(FEATURES, hidden, rng), new ReLU(), new Linear(hidden, hidden, rng), new ReLU(), new Linear(hidden, 1, rng)];
}
