export * from "./img.js";
export * from "./mapping.js";
export {
  ARG_OPTIONS,
  type ArgvToken,
  FLAG_OPTIONS,
  joinArgv,
  optionHead,
  splitArgv,
} from "./options.js";
export * from "./place.js";
export * from "./vm-argv.js";
