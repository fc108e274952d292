// The autograd package: the tape (engine.ts) and every differentiable op.
export * from "./engine.js";
export * from "./ops/arith.js";
export * from "./ops/activation.js";
export * from "./ops/matmul.js";
export * from "./ops/reduce.js";
export * from "./ops/shape.js";
export * from "./ops/softmax.js";
export * from "./ops/loss.js";
export * from "./ops/norm.js";
export * from "./ops/conv.js";
export * from "./ops/pool.js";
export * from "./ops/embedding.js";
export * from "./ops/dropout.js";
export * from "./ops/mask.js";
export * from "./ops/select.js";
export * from "./gradcheck.js";
