export { Tensor, type GradFn, type RowwiseGrad } from "./tensor.js";
export { Rng } from "./random.js";
export * from "./shape.js";
export { allocFloat32, hostMemory, sameMemory, setHostArrays, type HostArrays } from "./host-arrays.js";
