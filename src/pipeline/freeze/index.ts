// PipeTransformer's pure decision logic: freeze policy, AutoPipe/AutoDP planning, AutoCache, trace.
export * from "./policy.js";
export * from "./autopipe.js";
export * from "./cache.js";
export * from "./trace.js";
