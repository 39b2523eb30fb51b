export * from "./formats.js";
export * from "./generate.js";
export * from "./model.js";
export * from "./policies.js";
export * from "./regenerate.js";
