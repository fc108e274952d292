// Public surface of src/nn: modules, layers, init, losses and models.
export { Module, Sequential } from "./module.js";
export { Linear } from "./linear.js";
export { Conv1d, Conv2d, type Conv1dOptions, type Conv2dOptions, type Size2d } from "./conv.js";
export { MaxPool2d, AvgPool2d } from "./pool.js";
export { ReLU, GELU, Tanh, Flatten } from "./activation.js";
export { LayerNorm, GroupNorm, BatchNorm2d, collectBatchNormStatistics, type BatchNormCollector } from "./norm.js";
export { Embedding } from "./embedding.js";
export { Dropout } from "./dropout.js";
export { MultiHeadAttention, type AttentionOptions } from "./attention.js";
export { TransformerBlock, type TransformerBlockOptions } from "./transformer.js";
export { crossEntropyLoss } from "./loss.js";
export * as init from "./init.js";
export * from "./models/index.js";
