/**
 * The JSON form of a stored profile: a JSON Schema for the conf package, which checks it with
 * ajv on every read and write, and a hand-written check with precise messages for profile files
 * that were edited by hand.
 */
import { isAbsolute } from "node:path";
import type { Schema } from "conf";
import { UsageError } from "../core/errors.js";
import { MAX_PROFILE_NAME, PROFILE_NAME_PATTERN } from "../core/names.js";
import {
  MAX_MTU,
  MAX_PEERS,
  MIN_IPV6_MTU,
  MIN_MTU,
  type Validated,
  checkMtuForIpv6,
  isHostName,
  normalizeEndpoint,
  normalizeInterfaceAddress,
  normalizeIpAddress,
  normalizeNetwork,
  parseListenPort,
  parseMtu,
  showValue,
  validateWireGuardKey,
} from "./wgquick.js";
import type { InterfaceConfig, PeerConfig, Profile } from "./types.js";
import { MAX_PUBLISHED_PORTS, findDuplicate, formatHostSide, normalizeHostAddress, type PublishedPort } from "../publish/spec.js";

type JsonSchema = Schema<Profile>[keyof Profile];

// The same rule as validateProfileName in core/names.ts.

// 43 base64 characters and "=". The 43rd carries 4 bits of the key and 2 zero bits, so it is a
// character whose base64 index is a multiple of 4.
const KEY_PATTERN = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$";

const IPV4_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
const IPV4 = `${IPV4_OCTET}(?:\\.${IPV4_OCTET}){3}`;
// Hex digits, colons and dots with at least one colon: enough to tell IPv6 from IPv4 and names.
// validateStoredProfile parses the address fully.
const IPV6 = "[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*";
const IPV4_PREFIX = "(?:3[0-2]|[12]?[0-9])";
const IPV6_PREFIX = "(?:12[0-8]|1[01][0-9]|[1-9]?[0-9])";
const CIDR_PATTERN = `^(?:${IPV4}/${IPV4_PREFIX}|${IPV6}/${IPV6_PREFIX})$`;
const IP_PATTERN = `^(?:${IPV4}|${IPV6})$`;
const HOST_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const HOST_NAME_PATTERN = `^(?:${HOST_LABEL}\\.)*${HOST_LABEL}\\.?$`;
const PORT = "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})";
const ENDPOINT_PATTERN = `^(?:\\[${IPV6}\\]|[A-Za-z0-9.-]+):${PORT}$`;
const ISO_TIME_PATTERN = "^(\\d{4})-(\\d{2})-(\\d{2})T(\\d{2}):(\\d{2}):(\\d{2})(?:\\.\\d+)?(?:Z|[+-]\\d{2}:\\d{2})$";

const keySchema: JsonSchema = { type: "string", pattern: KEY_PATTERN };
const cidrListSchema: JsonSchema = { type: "array", minItems: 1, items: { type: "string", pattern: CIDR_PATTERN } };

/**
 * JSON Schema of a stored Profile for conf's `schema` option: a map from each top-level property
 * to its schema. The patterns are looser than the parser, so callers run validateStoredProfile
 * after loading as well. The schema uses no `format`, so it also works with an ajv that has no formats.
 */
export const profileSchema: Schema<Profile> = {
  name: { type: "string", minLength: 1, maxLength: MAX_PROFILE_NAME, pattern: PROFILE_NAME_PATTERN },
  interface: {
    type: "object",
    required: ["privateKey", "addresses", "dns", "dnsSearch"],
    additionalProperties: false,
    properties: {
      privateKey: keySchema,
      addresses: cidrListSchema,
      dns: { type: "array", items: { type: "string", pattern: IP_PATTERN } },
      dnsSearch: { type: "array", items: { type: "string", maxLength: 254, pattern: HOST_NAME_PATTERN } },
      mtu: { type: "integer", minimum: MIN_MTU, maximum: MAX_MTU },
      listenPort: { type: "integer", minimum: 0, maximum: 65535 },
    },
    // An interface with an IPv6 address needs an MTU of at least MIN_IPV6_MTU.
    if: {
      type: "object",
      required: ["mtu"],
      properties: { addresses: { type: "array", contains: { type: "string", pattern: ":" } } },
    },
    then: { properties: { mtu: { type: "integer", minimum: MIN_IPV6_MTU } } },
  },
  peers: {
    type: "array",
    minItems: 1,
    maxItems: MAX_PEERS,
    items: {
      type: "object",
      required: ["publicKey", "allowedIPs"],
      additionalProperties: false,
      properties: {
        publicKey: keySchema,
        presharedKey: keySchema,
        allowedIPs: cidrListSchema,
        endpoint: { type: "string", maxLength: 300, pattern: ENDPOINT_PATTERN },
        persistentKeepalive: { type: "integer", minimum: 1, maximum: 65535 },
      },
    },
  },
  source: { type: "string", minLength: 2, pattern: "^/" },
  importedAt: { type: "string", pattern: ISO_TIME_PATTERN },
  // Optional, so profiles stored before ports could be published stay valid.
  publish: {
    type: "array",
    maxItems: MAX_PUBLISHED_PORTS,
    items: {
      type: "object",
      required: ["protocol", "hostAddress", "hostPort", "namespacePort"],
      additionalProperties: false,
      properties: {
        protocol: { type: "string", enum: ["tcp", "udp"] },
        hostAddress: { type: "string", pattern: IP_PATTERN },
        hostPort: { type: "integer", minimum: 1, maximum: 65535 },
        namespacePort: { type: "integer", minimum: 1, maximum: 65535 },
      },
    },
  },
};

/**
 * Schema keywords for the top level of a stored profile, for conf's `rootSchema` option.
 * It has no `required` list, because conf also validates the empty store it starts from when a
 * profile file does not exist yet. validateStoredProfile checks the required fields.
 */
export const profileRootSchema = { additionalProperties: false } as const;

// ---------------------------------------------------------------------------------------------
// Hand-written check

type JsonObject = Record<string, unknown>;

const PROFILE_KEYS = ["name", "interface", "peers", "source", "importedAt", "publish"];
const PUBLISH_KEYS = ["protocol", "hostAddress", "hostPort", "namespacePort"];
const INTERFACE_KEYS = ["privateKey", "addresses", "dns", "dnsSearch", "mtu", "listenPort"];
const PEER_KEYS = ["publicKey", "presharedKey", "allowedIPs", "endpoint", "persistentKeepalive"];
const SECRET_KEYS = new Set(["privateKey", "presharedKey"]);

/**
 * Checks a profile loaded from JSON and returns it with addresses, networks and endpoints in
 * canonical form and only the known properties. Throws a UsageError that names `file`, the JSON
 * path and the value, such as `work.json: invalid peers[0].endpoint "vpn.example.net:0": port
 * must be 1 to 65535`. Secrets are never shown.
 */
export function validateStoredProfile(value: unknown, file: string): Profile {
  const check = new StoredProfileCheck(file);
  const root = check.object(value, "profile", PROFILE_KEYS);

  const name = check.requiredString(root, "name", "name");
  if (name.length > MAX_PROFILE_NAME || !new RegExp(PROFILE_NAME_PATTERN).test(name)) {
    throw check.invalid(
      "name",
      name,
      `a profile name has lowercase letters, digits, "-" and "_", starts with a letter or digit and has at most ${MAX_PROFILE_NAME} characters`,
    );
  }

  const profile: Profile = {
    name,
    interface: checkInterface(check, check.object(root.interface, "interface", INTERFACE_KEYS)),
    peers: checkPeers(check, root.peers),
  };

  const source = check.optionalString(root, "source", "source");
  if (source !== undefined) {
    if (!isAbsolute(source)) throw check.invalid("source", source, "expected an absolute path");
    profile.source = source;
  }
  const importedAt = check.optionalString(root, "importedAt", "importedAt");
  if (importedAt !== undefined) {
    if (!isIsoTime(importedAt)) {
      throw check.invalid("importedAt", importedAt, "expected an ISO 8601 time such as 2025-01-31T12:00:00.000Z");
    }
    profile.importedAt = importedAt;
  }
  if (root.publish !== undefined) profile.publish = checkPublish(check, root.publish);
  return profile;
}

function checkPublish(check: StoredProfileCheck, value: unknown): PublishedPort[] {
  if (!Array.isArray(value)) throw check.invalid("publish", value, "expected an array");
  if (value.length > MAX_PUBLISHED_PORTS) throw check.invalid("publish", value, `at most ${MAX_PUBLISHED_PORTS} published ports are allowed`);
  const entries: PublishedPort[] = [];
  value.forEach((item, index) => {
    const path = `publish[${index}]`;
    const object = check.object(item, path, PUBLISH_KEYS);
    const protocol = check.requiredString(object, "protocol", `${path}.protocol`);
    if (protocol !== "tcp" && protocol !== "udp") throw check.invalid(`${path}.protocol`, protocol, 'expected "tcp" or "udp"');
    const hostAddress = check.validated(`${path}.hostAddress`, check.requiredString(object, "hostAddress", `${path}.hostAddress`), normalizeHostAddress);
    const entry: PublishedPort = {
      protocol,
      hostAddress,
      hostPort: checkPort(check, object, "hostPort", path),
      namespacePort: checkPort(check, object, "namespacePort", path),
    };
    const earlier = findDuplicate(entries, entry);
    if (earlier >= 0) {
      throw check.invalid(`${path}.hostPort`, entry.hostPort, `${formatHostSide(entries[earlier]!)} in publish[${earlier}] already uses this host port; remove one of them`);
    }
    entries.push(entry);
  });
  return entries;
}

function checkPort(check: StoredProfileCheck, object: JsonObject, key: string, path: string): number {
  const port = check.optionalInteger(object, key, `${path}.${key}`);
  if (port === undefined) throw check.missing(`${path}.${key}`);
  if (port < 1 || port > 65535) throw check.invalid(`${path}.${key}`, port, "a port is a whole number from 1 to 65535");
  return port;
}

function checkInterface(check: StoredProfileCheck, object: JsonObject): InterfaceConfig {
  const privateKeyText = check.requiredString(object, "privateKey", "interface.privateKey");
  const privateKey = check.validated("interface.privateKey", privateKeyText, validateWireGuardKey);

  const addresses = check.requiredArray(object, "addresses", "interface.addresses");
  if (addresses.length === 0) {
    throw check.invalid("interface.addresses", addresses, "at least one address is required");
  }
  const iface: InterfaceConfig = {
    privateKey,
    addresses: check.stringList(addresses, "interface.addresses", normalizeInterfaceAddress),
    dns: check.stringList(check.requiredArray(object, "dns", "interface.dns"), "interface.dns", normalizeIpAddress),
    dnsSearch: check.stringList(
      check.requiredArray(object, "dnsSearch", "interface.dnsSearch"),
      "interface.dnsSearch",
      (text) => (isHostName(text) ? { ok: true, value: text } : { ok: false, reason: "not a valid domain name" }),
    ),
  };

  const mtu = check.optionalInteger(object, "mtu", "interface.mtu");
  if (mtu !== undefined) {
    iface.mtu = check.validated("interface.mtu", String(mtu), parseMtu, mtu);
    const reason = checkMtuForIpv6(mtu, iface.addresses);
    if (reason !== undefined) throw check.invalid("interface.mtu", mtu, reason);
  }
  const listenPort = check.optionalInteger(object, "listenPort", "interface.listenPort");
  if (listenPort !== undefined) {
    const port = check.validated("interface.listenPort", String(listenPort), parseListenPort, listenPort);
    if (port !== undefined) iface.listenPort = port;
  }
  return iface;
}

function checkPeers(check: StoredProfileCheck, value: unknown): PeerConfig[] {
  if (value === undefined) throw check.missing("peers");
  if (!Array.isArray(value)) throw check.invalid("peers", value, "expected an array");
  if (value.length === 0) {
    throw check.invalid("peers", value, "at least one peer is required to carry the namespace's traffic");
  }
  if (value.length > MAX_PEERS) throw check.invalid("peers", value, `at most ${MAX_PEERS} peers are allowed`);

  const pathsByKey = new Map<string, string>();
  return value.map((entry, index) => {
    const path = `peers[${index}]`;
    const peer = checkPeer(check, check.object(entry, path, PEER_KEYS), path);
    const earlier = pathsByKey.get(peer.publicKey);
    if (earlier !== undefined) {
      const reason = `the same key as ${earlier}.publicKey; each peer needs its own`;
      throw check.invalid(`${path}.publicKey`, peer.publicKey, reason);
    }
    pathsByKey.set(peer.publicKey, path);
    return peer;
  });
}

function checkPeer(check: StoredProfileCheck, object: JsonObject, path: string): PeerConfig {
  const publicKeyText = check.requiredString(object, "publicKey", `${path}.publicKey`);
  const publicKey = check.validated(`${path}.publicKey`, publicKeyText, validateWireGuardKey);
  const allowedIPs = check.requiredArray(object, "allowedIPs", `${path}.allowedIPs`);
  if (allowedIPs.length === 0) {
    throw check.invalid(`${path}.allowedIPs`, allowedIPs, "at least one network is required");
  }
  // Host bits in a hand-edited network are cleared without a warning. The parser clears them too, with one.
  const peer: PeerConfig = { publicKey, allowedIPs: check.stringList(allowedIPs, `${path}.allowedIPs`, normalizeNetwork) };

  const presharedKey = check.optionalString(object, "presharedKey", `${path}.presharedKey`);
  if (presharedKey !== undefined) {
    peer.presharedKey = check.validated(`${path}.presharedKey`, presharedKey, validateWireGuardKey);
  }
  const endpoint = check.optionalString(object, "endpoint", `${path}.endpoint`);
  if (endpoint !== undefined) peer.endpoint = check.validated(`${path}.endpoint`, endpoint, normalizeEndpoint);
  const keepalive = check.optionalInteger(object, "persistentKeepalive", `${path}.persistentKeepalive`);
  if (keepalive !== undefined) {
    if (keepalive < 1 || keepalive > 65535) {
      const reason = "persistentKeepalive must be 1 to 65535 seconds; remove it to turn keepalive off";
      throw check.invalid(`${path}.persistentKeepalive`, keepalive, reason);
    }
    peer.persistentKeepalive = keepalive;
  }
  return peer;
}

/** Type checks for JSON values whose errors name the file, the JSON path and the value. */
class StoredProfileCheck {
  private readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  missing(path: string): UsageError {
    return new UsageError(`${this.file}: missing ${path}`);
  }

  invalid(path: string, value: unknown, reason: string): UsageError {
    return new UsageError(`${this.file}: invalid ${path} ${showJson(value, isSecretPath(path))}: ${reason}`);
  }

  /** Runs a validator on `text` and returns its value, or throws with its reason and `shown` as the value. */
  validated<T>(path: string, text: string, validator: (text: string) => Validated<T>, shown: unknown = text): T {
    const result = validator(text);
    if (!result.ok) throw this.invalid(path, shown, result.reason);
    return result.value;
  }

  /** Checks that every entry is a string that passes `validator`, and returns the validated values. */
  stringList<T>(values: unknown[], path: string, validator: (text: string) => Validated<T>): T[] {
    return values.map((entry, index) => {
      const entryPath = `${path}[${index}]`;
      return this.validated(entryPath, this.string(entry, entryPath), validator);
    });
  }

  object(value: unknown, path: string, knownKeys: readonly string[]): JsonObject {
    if (value === undefined) throw this.missing(path);
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw this.invalid(path, value, "expected a JSON object");
    }
    const object = value as JsonObject;
    const unknown = Object.keys(object).find((key) => !knownKeys.includes(key));
    if (unknown !== undefined) {
      const unknownPath = path === "profile" ? unknown : `${path}.${unknown}`;
      throw new UsageError(`${this.file}: unknown property ${unknownPath}; expected only ${knownKeys.join(", ")}`);
    }
    return object;
  }

  string(value: unknown, path: string): string {
    if (typeof value !== "string") throw this.invalid(path, value, "expected a string");
    return value;
  }

  requiredString(object: JsonObject, key: string, path: string): string {
    if (object[key] === undefined) throw this.missing(path);
    return this.string(object[key], path);
  }

  optionalString(object: JsonObject, key: string, path: string): string | undefined {
    return object[key] === undefined ? undefined : this.string(object[key], path);
  }

  requiredArray(object: JsonObject, key: string, path: string): unknown[] {
    const value = object[key];
    if (value === undefined) throw this.missing(path);
    if (!Array.isArray(value)) throw this.invalid(path, value, "expected an array");
    return value;
  }

  optionalInteger(object: JsonObject, key: string, path: string): number | undefined {
    const value = object[key];
    if (value === undefined) return undefined;
    if (typeof value !== "number" || !Number.isInteger(value)) throw this.invalid(path, value, "expected a whole number");
    return value;
  }
}

/** Returns whether `text` is an ISO 8601 date and time with a real calendar date, such as 2025-01-31T12:00:00Z. */
function isIsoTime(text: string): boolean {
  const match = new RegExp(ISO_TIME_PATTERN).exec(text);
  if (match === null) return false;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number);
  // Day 0 of the next month is the last day of this one.
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth && hour <= 23 && minute <= 59 && second <= 59;
}

function isSecretPath(path: string): boolean {
  const last = path.slice(path.lastIndexOf(".") + 1);
  return SECRET_KEYS.has(last);
}

/** Quotes a JSON value for a message, truncated, with secrets hidden. */
function showJson(value: unknown, secret: boolean): string {
  if (typeof value === "string") return showValue(value, secret);
  if (secret) return "(value hidden)";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
