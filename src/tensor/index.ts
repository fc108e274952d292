export { Tensor, type GradFn } from "./tensor.js";
export { Rng } from "./random.js";
export * from "./shape.js";
