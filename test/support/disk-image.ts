/**
 * The sysprep tests' reference disk image: built by src/bench/disk-image.ts
 * (shared with `npm run bench`), cached under ${XDG_CACHE_HOME:-~/.cache}/glint-test/.
 */
export {
  BASE_IDS,
  type BaseIds,
  cacheRoot,
  type DiskImage,
  type DiskImageOptions,
  diskImage,
  type PartitionInfo,
} from "../../src/bench/disk-image.js";
