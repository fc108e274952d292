// `pipewright/nn`: what model code may reach for besides the layers, which the root exports (the
// one way to import them): weight initialisers, the BatchNorm statistics hook, accuracy counting,
// and the built-in models' specs.
export * as init from "./nn/init.js";
export { collectBatchNormStatistics, type BatchNormCollector } from "./nn/norm.js";
export { countCorrect } from "./nn/loss.js";
export { MODEL_NAMES, resolveSpec, describeSpec, type ModelName, type ResolvedSpec, type MlpSpec, type CnnSpec, type VitSpec, type GptSpec } from "./nn/models/spec.js";
