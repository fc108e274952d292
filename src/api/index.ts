// createPipeline and its option types.
export { createPipeline, Pipe, type MiniBatch } from "./pipe.js";
export type { PipelineOptions, ModelOption, ModuleModel, BuiltinModel, LossOption } from "./options.js";
export type { AsyncOptions } from "./async-options.js";
export { FreezingPipe, type FreezeOption, type FreezingPipeOptions } from "./freeze-pipe.js";
