// createPipeline and its option types.
export { createPipeline } from "./pipe.js";
export type { Pipe } from "./pipe-interface.js";
export type { MiniBatch } from "./engine.js";
export type { PipelineOptions, ModelOption, ModuleModel, ModelFactory, ModelContext, FactoryExport, BuiltinModel, LossOption } from "./options.js";
export type { AsyncOptions } from "./async-options.js";
export { FreezingPipe, type FreezeOption, type FreezingPipeOptions } from "./freeze-pipe.js";
