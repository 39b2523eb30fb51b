/** Valid identities drawn with the project's own generators. */
import {
  IDENTIFIER_FIELDS,
  type IdentifierField,
  type SystemIdentifiers,
} from "../../src/identity/model.js";
import { POLICIES, type PolicyName } from "../../src/identity/policies.js";
import { applyPolicy } from "../../src/identity/regenerate.js";
import { seededRandom } from "./random.js";

const NEVER_USED = { has: () => false };

/** A new, valid identity (generation 1). */
export function freshIds(): SystemIdentifiers {
  return applyPolicy(undefined, POLICIES.fresh, NEVER_USED);
}

/** The next generation of `ids` under `policy`. */
export function regenerate(ids: SystemIdentifiers, policy: PolicyName): SystemIdentifiers {
  return applyPolicy(ids, POLICIES[policy], NEVER_USED);
}

/** A fresh, valid identity drawn from a seed: same seed → same identity. */
export function identityFromSeed(seed: number | string): SystemIdentifiers {
  return applyPolicy(undefined, POLICIES.fresh, NEVER_USED, {
    random: seededRandom(seed),
    now: new Date("2026-01-31T12:00:00Z"),
  });
}

/** The UUID fields Glint places as `glint.<field>=` OEM strings, which the guest reads back. */
export const GLINT_UUID_FIELDS = IDENTIFIER_FIELDS.filter(
  (f): f is Exclude<Extract<IdentifierField, `${string}_uuid`>, "vm_uuid"> =>
    f.endsWith("_uuid") && f !== "vm_uuid",
);
