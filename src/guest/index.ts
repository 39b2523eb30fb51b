export * from "./cloudinit.js";
export * from "./configdrive.js";
export * from "./hostname.js";
export * from "./identity-env.js";
export * from "./script.js";
export * from "./seed.js";
