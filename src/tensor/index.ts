export { Tensor, type GradFn, type RowwiseGrad } from "./tensor.js";
export { Rng } from "./random.js";
export * from "./shape.js";
