export * from "./cost-model.js";
export * from "./simulate.js";
export * from "./formulas.js";
