// Embedding lookup: rows of weight [V, D] selected by integer ids stored as floats.
import { getBackend } from "../../backend/index.js";
import { Tensor } from "../../tensor/tensor.js";
import { fmt } from "../../tensor/shape.js";
import { record } from "../engine.js";
import { checkTensor, toIndices } from "./util.js";
import { allocFloat32 } from "../../tensor/host-arrays.js";

/**
 * weight [V, D], ids of any shape holding integers in 0..V-1 -> [...ids.shape, D]. Ids may also be
 * an Int32Array ([n]), used as it is (a constant such as GPT's positions then goes to a device once).
 */
export function embedding(weight: Tensor, ids: Tensor | Int32Array): Tensor {
  checkTensor(weight, "embedding", "weight");
  if (ids instanceof Tensor) checkTensor(ids, "embedding", "ids");
  const shape = ids instanceof Tensor ? ids.shape : [ids.length];
  if (weight.rank !== 2) throw new Error(`embedding: weight ${fmt(weight.shape)} and ids ${fmt(shape)}: weight must be [V, D]`);
  const [v, d] = weight.shape;
  const idx = toIndices(ids instanceof Tensor ? ids.data : ids, v, "embedding", `id (ids ${fmt(shape)}, weight ${fmt(weight.shape)})`);
  const be = getBackend();
  const out = Tensor.empty([...shape, d]); // every row gathered
  be.gather(weight.data, idx, d, out.data);
  // ids are indices, not values: they never receive a gradient.
  return record(out, "embedding", [weight], (g, _needs, into) => {
    const dw = into?.[0] ?? allocFloat32(weight.size); // scatter-add accumulates by nature
    be.scatterAdd(g, idx, d, dw);
    return [dw];
  });
}
