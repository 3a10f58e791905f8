export * from "./core/error.js";
export * from "./sglang/index.js";
