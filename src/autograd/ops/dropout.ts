// Inverted dropout: zero each element with probability p and scale the rest by 1/(1-p).
import { getBackend } from "../../backend/index.js";
import { Tensor } from "../../tensor/tensor.js";
import { counterUint32, type Rng } from "../../tensor/random.js";
import { record } from "../engine.js";
import { checkTensor } from "./util.js";
import { allocFloat32 } from "../../tensor/host-arrays.js";

/**
 * Identity when not training or p = 0 (returns x itself, like torch). The mask draws a key (two
 * words) from `rng`; element i is dropped when counterUint32(key, i) / 2^32 < p, on the device where
 * the backend has dropoutMask, with the same bits either way.
 */
export function dropout(x: Tensor, p: number, rng: Rng, training: boolean): Tensor {
  checkTensor(x, "dropout", "input");
  if (!(p >= 0 && p <= 1)) throw new Error(`dropout: probability ${p} must be in [0, 1]`);
  if (!training || p === 0) return x;
  const be = getBackend();
  const mask = allocFloat32(x.size);
  if (p < 1) {
    const k0 = rng.nextUint32(), k1 = rng.nextUint32();
    if (be.dropoutMask) be.dropoutMask(mask, k0, k1, p);
    else {
      const keep = 1 / (1 - p), below = p * 4294967296;
      for (let i = 0; i < mask.length; i++) mask[i] = counterUint32(k0, k1, i) < below ? 0 : keep;
    }
  }
  const out = Tensor.zeros(x.shape);
  be.binary("mul", x.data, x.shape, mask, x.shape, out.data, x.shape);
  return record(out, "dropout", [x], (g) => {
    const dx = allocFloat32(x.size);
    be.binary("mul", g, x.shape, mask, x.shape, dx, x.shape);
    return [dx];
  });
}
