// Child process for test/sysprep/kill.test.ts: applies an identity to an
// image with the built library, then prints "done".
// Usage: node sysprep-child.mjs <image> <identity.json> <vm-name>
import { readFileSync } from "node:fs";
import { sysprepImage } from "../../dist/sysprep/index.js";

const [image, idFile, vmName] = process.argv.slice(2);
const identifiers = JSON.parse(readFileSync(idFile, "utf8"));
await sysprepImage(image, { vmName, identifiers });
process.stdout.write("done\n");
