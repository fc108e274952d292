// `pipewright/optim`: what optimizer code may reach for besides the optimizers and schedules, which
// the root exports (the one way to import them): the base class for a new optimizer, the defaults,
// the schedule parser, and optimizer-state plumbing (plain form, merging and slicing per stage).
export { Optimizer, type OptimizerState, type ParamGroup, type ParamGroupInput, type ParamsInput, type NamedParams } from "./optim/optimizer.js";
export { SGD_DEFAULTS } from "./optim/sgd.js";
export { ADAMW_DEFAULTS } from "./optim/adamw.js";
export { parseSchedule, LR_SCHEDULE_KINDS } from "./optim/schedule.js";
export { toPlain, fromPlain, mergeStates, sliceState, type PlainOptimizerState, type StateEntry } from "./optim/state.js";
