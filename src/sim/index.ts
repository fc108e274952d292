export * from "./cost-model.js";
export * from "./simulate.js";
export * from "./formulas.js";
export * from "./shared-cores.js";
export * from "./measured.js";
