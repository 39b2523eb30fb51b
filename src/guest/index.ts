export * from "./cloudinit.js";
export * from "./render.js";
export * from "./script.js";
