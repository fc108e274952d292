// The classifier of example (c), in a module of its own: every worker imports this file (and only it)
// for `build`, so the training script needs no isMainThread guard.
import { Linear, ReLU, Rng } from "pipewright";

export const CLASSES = 4, FEATURES = 10;

export function build({ hidden = 32, seed = 0 } = {}) {
  const rng = new Rng(seed);
  return [new Linear(FEATURES, hidden, rng), new ReLU(), new Linear(hidden, hidden, rng), new ReLU(),
    new Linear(hidden, hidden, rng), new ReLU(), new Linear(hidden, CLASSES, rng)];
}
