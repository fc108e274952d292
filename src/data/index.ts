export * from "./idx.js";
export * from "./fashion-mnist.js";
export * from "./loader.js";
export * from "./microbatch.js";
export * from "./text.js";
export * from "./arrays.js";
