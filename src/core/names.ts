/** Profile names and every name derived from them: namespace, interface, folders. */
import { createRequire } from "node:module";
import { UsageError } from "./errors.js";

/** Maximum profile name length, which keeps the namespace name and folders far below file name limits. */
export const MAX_PROFILE_NAME = 32;
/** Maximum interface name length in the kernel: IFNAMSIZ is 16 bytes including the terminating NUL. */
export const MAX_INTERFACE_NAME = 15;

/** Pattern of a valid profile name, also used by the stored-profile schema. */
export const PROFILE_NAME_PATTERN = "^[a-z0-9][a-z0-9_-]*$";
const PROFILE_NAME = new RegExp(PROFILE_NAME_PATTERN);
const NAMESPACE_PREFIX = "vpnns-";
const INTERFACE_PREFIX = "vns-";

/** Default next step in a profile name error: commands other than import name a stored profile. */
const LIST_PROFILES_HINT = "list the stored profiles with: vpnns profile list";

/**
 * Throw a UsageError unless the name is a valid profile name. `hint` is the next step the message
 * ends with; `profile import`, which chooses the name, passes one that points to --name.
 */
export function validateProfileName(name: string, hint = LIST_PROFILES_HINT): void {
  if (name.length === 0) throw new UsageError(`invalid profile name: the name is empty; ${hint}`);
  const quoted = JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
  if (name.length > MAX_PROFILE_NAME) {
    throw new UsageError(`invalid profile name ${quoted}: ${name.length} characters, at most ${MAX_PROFILE_NAME} are allowed; ${hint}`);
  }
  if (!PROFILE_NAME.test(name)) {
    throw new UsageError(
      `invalid profile name ${quoted}: use lowercase letters, digits, '-' and '_', starting with a letter or digit; ${hint}`,
    );
  }
}

export function namespaceName(profile: string): string {
  return `${NAMESPACE_PREFIX}${profile}`;
}

/** Return the profile a vpnns namespace belongs to, or undefined for other namespaces. */
export function profileOfNamespace(namespace: string): string | undefined {
  return namespace.startsWith(NAMESPACE_PREFIX) ? namespace.slice(NAMESPACE_PREFIX.length) : undefined;
}

/**
 * Derive the WireGuard interface name: "vns-<profile>" when it fits in 15 characters, otherwise
 * the first 6 characters of the profile, "-" and 4 hex digits of its SHA-256, so long names stay
 * distinct. Two names can still share an interface name, so import, loadProfile and `down` check for that
 * with findInterfaceClash.
 */
export function interfaceName(profile: string): string {
  const plain = `${INTERFACE_PREFIX}${profile}`;
  if (plain.length <= MAX_INTERFACE_NAME) return plain;
  const digest = loadCrypto().createHash("sha256").update(profile).digest("hex").slice(0, 4);
  return `${INTERFACE_PREFIX}${profile.slice(0, 6)}-${digest}`;
}

/**
 * Load node:crypto on first use. Loading it costs several milliseconds, and only profile names
 * longer than 11 characters need the hash, so a command for a short name never loads it.
 */
let cryptoModule: typeof import("node:crypto") | undefined;
function loadCrypto(): typeof import("node:crypto") {
  cryptoModule ??= createRequire(import.meta.url)("node:crypto") as typeof import("node:crypto");
  return cryptoModule;
}

/**
 * Return the first of `others`, other than `profile` itself, whose interface name is that of
 * `profile`, or undefined. Shortening lets two names share one, such as "abcdefghijkl" and
 * "abcdef-d682", which both become vns-abcdef-d682.
 */
export function findInterfaceClash(profile: string, others: readonly string[]): string | undefined {
  const link = interfaceName(profile);
  return others.find((other) => other !== profile && interfaceName(other) === link);
}
