// Causal masking of attention scores: entries above the diagonal become -Infinity.
import { getBackend } from "../../backend/index.js";
import { Tensor } from "../../tensor/tensor.js";
import { fmt } from "../../tensor/shape.js";
import { gradBuffer, record } from "../engine.js";
import { checkTensor } from "./util.js";

/** x [..., T, T] -> same with x[..., i, j] = -Infinity for j > i (masked entries get no gradient). */
export function causalMask(x: Tensor): Tensor {
  checkTensor(x, "causalMask", "input");
  if (x.rank < 2 || x.shape[x.rank - 1] !== x.shape[x.rank - 2]) {
    throw new Error(`causalMask: input ${fmt(x.shape)} must end in two equal dimensions [..., T, T]`);
  }
  const t = x.shape[x.rank - 1];
  const batch = t === 0 ? 0 : x.size / (t * t);
  const be = getBackend();
  const out = Tensor.empty(x.shape);
  be.causalMask(x.data, batch, t, -Infinity, out.data);
  return record(out, "causalMask", [x], (g) => {
    const dx = gradBuffer(x.size);
    be.causalMask(g, batch, t, 0, dx);
    return [dx];
  });
}
