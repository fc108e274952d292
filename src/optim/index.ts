// Public surface of src/optim.
export { Optimizer, type OptimizerState, type ParamGroup, type ParamGroupInput, type ParamsInput, type NamedParams } from "./optimizer.js";
export { SGD, SGD_DEFAULTS, type SgdOptions } from "./sgd.js";
export { AdamW, ADAMW_DEFAULTS, type AdamWOptions } from "./adamw.js";
export * from "./schedule.js";
export { createOptimizer, OPTIMIZER_NAMES, type OptimizerName, type OptimizerConfig } from "./factory.js";
export { clipGradNorm } from "./clip.js";
export { toPlain, fromPlain, mergeStates, sliceState, type PlainOptimizerState, type StateEntry } from "./state.js";
