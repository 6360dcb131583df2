/**
 * Parser for wg-quick configuration files, and the validators for keys, addresses, endpoints
 * and numbers that the profile store reuses.
 *
 * The syntax follows wireguard-tools (wg-quick/linux.bash and wg's config.c): "#" starts a
 * comment anywhere on a line, key and section names ignore letter case, and a line is either
 * "[Section]" or "Key = Value". Values are checked more strictly than wg does, because a
 * provider's file is untrusted input and vpnns stores the result.
 */
import { Buffer } from "node:buffer";
import { isIPv4, isIPv6 } from "node:net";
import { UsageError } from "../core/errors.js";
import type { InterfaceConfig, PeerConfig, WireGuardConfig } from "./types.js";

/** Maximum size of a wg-quick file in UTF-8 bytes (1 MiB), room for MAX_PEERS peers of several hundred bytes each. */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/** Maximum length of one line in characters. Address, DNS and AllowedIPs lines accumulate, so a long list can be split. */
export const MAX_LINE_LENGTH = 4096;
/** Maximum number of [Peer] sections in one file. */
export const MAX_PEERS = 1000;

/*
 * MTU bounds in bytes. wg-quick passes MTU to `ip link` unchecked, so the kernel's limits
 * apply. vpnns accepts 576, the IPv4 datagram size every host must accept (RFC 791), to 65535,
 * the largest IPv4 packet. With an IPv6 address the minimum is 1280 (RFC 8200), because the
 * kernel disables IPv6 on links with a smaller MTU.
 */
export const MIN_MTU = 576;
export const MIN_IPV6_MTU = 1280;
export const MAX_MTU = 65535;

export interface ParseResult {
  config: WireGuardConfig;
  /** Messages about keys that were ignored or changed, each starting with "file:line:". */
  warnings: string[];
}

/** Outcome of a validator: the normalized value, or the reason why the text is invalid. */
export type Validated<T> = { ok: true; value: T } | { ok: false; reason: string };

function valid<T>(value: T): Validated<T> {
  return { ok: true, value };
}

function invalid(reason: string): { ok: false; reason: string } {
  return { ok: false, reason };
}

// ---------------------------------------------------------------------------------------------
// Keys

const BASE64_KEY = /^[A-Za-z0-9+/]{43}=$/;

/**
 * Returns whether `text` is a WireGuard key: 32 bytes in standard base64, which is 44 characters
 * ending in "=". Only the canonical encoding passes, so the text must survive a decode and
 * re-encode unchanged (the unused low bits of the 43rd character must be zero).
 */
export function isWireGuardKey(text: string): boolean {
  return BASE64_KEY.test(text) && Buffer.from(text, "base64").toString("base64") === text;
}

/** Returns `text` if it is a WireGuard key, or the reason why it is not. */
export function validateWireGuardKey(text: string): Validated<string> {
  return isWireGuardKey(text) ? valid(text) : invalid(`a key must be 32 bytes in base64: 44 characters ending in "="`);
}

// ---------------------------------------------------------------------------------------------
// IP addresses and CIDR

export interface IpAddress {
  family: 4 | 6;
  /** Canonical text: dotted decimal, or compressed lowercase IPv6 as RFC 5952 defines it. */
  text: string;
  /** The address as an unsigned 32-bit (IPv4) or 128-bit (IPv6) integer. */
  value: bigint;
}

/** Parses an IPv4 or IPv6 address without prefix and returns it in canonical form. */
export function parseIpAddress(text: string): Validated<IpAddress> {
  const zone = text.indexOf("%");
  if (zone >= 0) return invalid(`IPv6 zone id "${text.slice(zone)}" is not supported`);
  if (text.includes(":")) return parseIpv6(text);
  if (/^[0-9.]+$/.test(text)) return parseIpv4(text);
  return invalid("not an IPv4 or IPv6 address");
}

function parseIpv4(text: string): Validated<IpAddress> {
  const octets = text.split(".");
  if (octets.length !== 4 || octets.some((octet) => octet === "")) {
    return invalid("not an IPv4 address: expected four numbers separated by dots");
  }
  let value = 0n;
  for (const octet of octets) {
    if (!/^\d+$/.test(octet)) return invalid("not an IPv4 address: expected four numbers separated by dots");
    if (octet.length > 1 && octet.startsWith("0")) return invalid(`IPv4 octet "${octet}" has a leading zero`);
    if (Number(octet) > 255) return invalid(`IPv4 octet ${octet} is greater than 255`);
    value = (value << 8n) | BigInt(octet);
  }
  // Guards against any form the checks above let through but Node.js does not accept.
  if (!isIPv4(text)) return invalid("not a valid IPv4 address");
  return valid({ family: 4, text: formatIpv4(value), value });
}

function parseIpv6(text: string): Validated<IpAddress> {
  if (text.includes(":::")) return invalid(`":::" is not valid in an IPv6 address`);
  const halves = text.split("::");
  if (halves.length > 2) return invalid(`"::" may appear only once in an IPv6 address`);
  const compressed = halves.length === 2;
  const head = halves[0] === "" ? [] : halves[0].split(":");
  const tail = compressed && halves[1] !== "" ? halves[1].split(":") : [];

  // An embedded IPv4 address (as in ::ffff:192.0.2.1) may only be the last part.
  const headGroups = parseIpv6Groups(head, !compressed);
  if (!headGroups.ok) return headGroups;
  const tailGroups = parseIpv6Groups(tail, true);
  if (!tailGroups.ok) return tailGroups;

  const count = headGroups.value.length + tailGroups.value.length;
  if (count > 8) return invalid(`${count} groups, more than the 8 of an IPv6 address`);
  if (compressed && count === 8) return invalid(`"::" must stand for at least one zero group, but 8 groups are given`);
  if (!compressed && count < 8) return invalid(`only ${count} groups; an IPv6 address has 8 unless "::" stands for zeros`);

  const zeros: number[] = new Array<number>(8 - count).fill(0);
  const groups = [...headGroups.value, ...zeros, ...tailGroups.value];
  const value = groups.reduce((sum, group) => (sum << 16n) | BigInt(group), 0n);
  // Guards against any form the checks above let through but Node.js does not accept.
  if (!isIPv6(text)) return invalid("not a valid IPv6 address");
  return valid({ family: 6, text: formatIpv6(value), value });
}

function parseIpv6Groups(parts: string[], ipv4Allowed: boolean): Validated<number[]> {
  const groups: number[] = [];
  for (const [index, part] of parts.entries()) {
    if (ipv4Allowed && index === parts.length - 1 && part.includes(".")) {
      const ipv4 = parseIpv4(part);
      if (!ipv4.ok) return ipv4;
      groups.push(Number(ipv4.value.value >> 16n), Number(ipv4.value.value & 0xffffn));
    } else if (/^[0-9A-Fa-f]{1,4}$/.test(part)) {
      groups.push(Number.parseInt(part, 16));
    } else if (part === "") {
      return invalid("empty group between single colons in an IPv6 address");
    } else {
      return invalid(`invalid IPv6 group "${part}": expected 1 to 4 hex digits`);
    }
  }
  return valid(groups);
}

function formatIpv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join(".");
}

/** Formats an IPv6 address as RFC 5952 recommends: lowercase, no leading zeros, longest zero run as "::". */
function formatIpv6(value: bigint): string {
  // IPv4-mapped addresses (::ffff:0:0/96) keep their dotted IPv4 part.
  if (value >> 32n === 0xffffn) return `::ffff:${formatIpv4(value & 0xffffffffn)}`;

  const groups = [7n, 6n, 5n, 4n, 3n, 2n, 1n, 0n].map((index) => Number((value >> (16n * index)) & 0xffffn));
  // Only a run of two or more zero groups becomes "::", and on a tie the first run does.
  let bestStart = -1;
  let bestLength = 1;
  let start = 0;
  while (start < 8) {
    if (groups[start] !== 0) {
      start++;
      continue;
    }
    let end = start;
    while (end < 8 && groups[end] === 0) end++;
    if (end - start > bestLength) {
      bestStart = start;
      bestLength = end - start;
    }
    start = end;
  }

  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

function formatIpAddress(family: 4 | 6, value: bigint): string {
  return family === 4 ? formatIpv4(value) : formatIpv6(value);
}

/** An address with prefix length, such as 10.64.0.2/32 or 2001:db8::/32. */
export interface Cidr {
  address: IpAddress;
  prefix: number;
}

/**
 * Parses "address/prefix". An address without prefix gets /32 (IPv4) or /128 (IPv6), as in wg
 * and wg-quick. Host bits are kept; `maskCidr` clears them.
 */
export function parseCidr(text: string): Validated<Cidr> {
  const slash = text.indexOf("/");
  const address = parseIpAddress(slash < 0 ? text : text.slice(0, slash));
  if (!address.ok) return address;

  const { family } = address.value;
  const maxPrefix = family === 4 ? 32 : 128;
  if (slash < 0) return valid({ address: address.value, prefix: maxPrefix });

  const prefixText = text.slice(slash + 1);
  if (!/^\d+$/.test(prefixText)) {
    return invalid(`prefix length must be a whole number from 0 to ${maxPrefix} for IPv${family}`);
  }
  const prefix = Number(prefixText);
  if (prefix > maxPrefix) return invalid(`prefix length must be 0 to ${maxPrefix} for IPv${family}`);
  return valid({ address: address.value, prefix });
}

export function formatCidr(cidr: Cidr): string {
  return `${cidr.address.text}/${cidr.prefix}`;
}

/** Returns `cidr` with its host bits cleared, so 10.0.0.5/24 becomes 10.0.0.0/24. */
export function maskCidr(cidr: Cidr): Cidr {
  const { family } = cidr.address;
  const hostBits = BigInt((family === 4 ? 32 : 128) - cidr.prefix);
  const value = (cidr.address.value >> hostBits) << hostBits;
  return { address: { family, text: formatIpAddress(family, value), value }, prefix: cidr.prefix };
}

/** Normalizes an IP address without prefix to canonical form. */
export function normalizeIpAddress(text: string): Validated<string> {
  const address = parseIpAddress(text);
  return address.ok ? valid(address.value.text) : address;
}

/** Normalizes an interface address to canonical "address/prefix", keeping host bits (10.0.0.2/24 stays). */
export function normalizeInterfaceAddress(text: string): Validated<string> {
  const cidr = parseCidr(text);
  return cidr.ok ? valid(formatCidr(cidr.value)) : cidr;
}

/** Normalizes a routed network (an AllowedIPs entry) to canonical "address/prefix" with host bits cleared. */
export function normalizeNetwork(text: string): Validated<string> {
  const cidr = parseCidr(text);
  return cidr.ok ? valid(formatCidr(maskCidr(cidr.value))) : cidr;
}

// ---------------------------------------------------------------------------------------------
// Host names, endpoints and DNS

const HOST_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * Returns whether `text` is a host name by RFC 1123: dot-separated labels of 1 to 63 letters,
 * digits and hyphens, no label starting or ending with a hyphen, at most 253 characters and an
 * optional trailing dot. The last label must not be all digits, so 192.0.2.300 is not a name.
 */
export function isHostName(text: string): boolean {
  const name = text.endsWith(".") ? text.slice(0, -1) : text;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split(".");
  if (!labels.every((label) => HOST_LABEL.test(label))) return false;
  return !/^\d+$/.test(labels[labels.length - 1]);
}

/** A peer's UDP endpoint. Host names are kept as written and resolved later by wg. */
export interface Endpoint {
  /** A host name, or an IP address in canonical form (IPv6 without brackets). */
  host: string;
  hostType: "ipv4" | "ipv6" | "name";
  port: number;
}

/** Parses "host:port", "a.b.c.d:port" or "[ipv6]:port". */
export function parseEndpoint(text: string): Validated<Endpoint> {
  let hostText: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) return invalid(`missing "]" after the IPv6 address`);
    hostText = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (!rest.startsWith(":")) return invalid(`missing port after "]"; expected [address]:port`);
    portText = rest.slice(1);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) return invalid("missing port; expected host:port, such as vpn.example.net:51820");
    hostText = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (hostText.includes(":")) return invalid("an IPv6 address needs brackets, as in [2001:db8::1]:51820");
    if (hostText === "") return invalid("missing host before the port");
  }

  const host = parseEndpointHost(hostText, text.startsWith("["));
  if (!host.ok) return host;
  if (!/^\d+$/.test(portText)) return invalid("port must be a number from 1 to 65535");
  const port = Number(portText);
  if (port < 1 || port > 65535) return invalid("port must be 1 to 65535");
  return valid({ ...host.value, port });
}

function parseEndpointHost(text: string, bracketed: boolean): Validated<Pick<Endpoint, "host" | "hostType">> {
  if (bracketed || /^[0-9.]+$/.test(text)) {
    const address = parseIpAddress(text);
    if (!address.ok) return address;
    if (bracketed && address.value.family !== 6) return invalid("brackets are only for IPv6 addresses");
    return valid({ host: address.value.text, hostType: address.value.family === 4 ? "ipv4" : "ipv6" });
  }
  if (!isHostName(text)) return invalid(`"${text}" is not a valid host name`);
  return valid({ host: text, hostType: "name" });
}

export function formatEndpoint(endpoint: Endpoint): string {
  return endpoint.hostType === "ipv6" ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

/** Normalizes an endpoint to "host:port", with IP addresses in canonical form. */
export function normalizeEndpoint(text: string): Validated<string> {
  const endpoint = parseEndpoint(text);
  return endpoint.ok ? valid(formatEndpoint(endpoint.value)) : endpoint;
}

/** One entry of a DNS list: a name server address, or a search domain. */
export type DnsEntry = { kind: "nameserver"; address: string } | { kind: "search"; domain: string };

/**
 * Classifies a DNS entry the way wg-quick does: digits and dots, or any colon, make a name server
 * address, and other words are search domains. Unlike wg-quick, both kinds are validated.
 */
export function parseDnsEntry(text: string): Validated<DnsEntry> {
  if (/^[0-9.]+$/.test(text) || text.includes(":")) {
    const address = parseIpAddress(text);
    return address.ok ? valid({ kind: "nameserver", address: address.value.text }) : address;
  }
  if (!isHostName(text)) return invalid("not an IP address or a domain name");
  return valid({ kind: "search", domain: text });
}

// ---------------------------------------------------------------------------------------------
// Numbers

function parseWholeNumber(text: string): number | undefined {
  return /^\d+$/.test(text) ? Number(text) : undefined;
}

/** Parses an MTU in bytes, MIN_MTU to MAX_MTU. `checkMtuForIpv6` applies the IPv6 minimum. */
export function parseMtu(text: string): Validated<number> {
  const mtu = parseWholeNumber(text);
  if (mtu === undefined) return invalid(`MTU must be a whole number from ${MIN_MTU} to ${MAX_MTU}`);
  if (mtu < MIN_MTU || mtu > MAX_MTU) return invalid(`MTU must be ${MIN_MTU} to ${MAX_MTU}`);
  return valid(mtu);
}

/** Returns why `mtu` is too small for the first IPv6 address among `addresses`, or undefined if it is not. */
export function checkMtuForIpv6(mtu: number, addresses: readonly string[]): string | undefined {
  if (mtu >= MIN_IPV6_MTU) return undefined;
  const ipv6 = addresses.find((address) => address.includes(":"));
  if (ipv6 === undefined) return undefined;
  return `MTU must be at least ${MIN_IPV6_MTU} because the profile has the IPv6 address ${ipv6}`;
}

/** Parses a listen port. Port 0 lets the kernel pick a random port, the same as no ListenPort, so it returns undefined. */
export function parseListenPort(text: string): Validated<number | undefined> {
  const port = parseWholeNumber(text);
  if (port === undefined) return invalid("port must be a number from 0 to 65535");
  if (port > 65535) return invalid("port must be 0 to 65535");
  return valid(port === 0 ? undefined : port);
}

/** Parses PersistentKeepalive in seconds. "off" and 0 both turn keepalive off and return undefined. */
export function parsePersistentKeepalive(text: string): Validated<number | undefined> {
  if (text.toLowerCase() === "off") return valid(undefined);
  const seconds = parseWholeNumber(text);
  if (seconds === undefined || seconds > 65535) {
    return invalid(`PersistentKeepalive must be "off" or a number of seconds from 0 to 65535`);
  }
  return valid(seconds === 0 ? undefined : seconds);
}

// ---------------------------------------------------------------------------------------------
// Messages

const MAX_SHOWN_LENGTH = 80;

function truncate(text: string): string {
  return text.length > MAX_SHOWN_LENGTH ? `${text.slice(0, MAX_SHOWN_LENGTH)}…` : text;
}

/** Quotes a value for a message, hiding secrets. */
export function showValue(value: string, secret: boolean): string {
  if (secret) return `(value hidden, ${value.length} characters)`;
  return JSON.stringify(truncate(value));
}

/**
 * Quotes a line, or the key part of a line, that the parser does not recognize. Text that names
 * a secret key or contains a long base64 run may be a mistyped key line, so it is hidden.
 */
function showUnrecognized(text: string, what: "line" | "key" | "section"): string {
  if (/privatekey|presharedkey/i.test(text) || /[A-Za-z0-9+/]{40}/.test(text)) {
    return `(${what} hidden because it may contain a secret, ${text.length} characters)`;
  }
  return JSON.stringify(truncate(text));
}

// ---------------------------------------------------------------------------------------------
// Parser

type SectionName = "Interface" | "Peer";

/** Parser rule for one key: its spelling in messages, its section and its kind of value. */
interface KeyRule {
  name: string;
  section: SectionName;
  /** A "single" key takes one value, "list" values accumulate, an "ignored" key gets a warning and a "hook" is never run. */
  kind: "single" | "list" | "ignored" | "hook";
}

const KEY_RULES: readonly KeyRule[] = [
  { name: "PrivateKey", section: "Interface", kind: "single" },
  { name: "Address", section: "Interface", kind: "list" },
  { name: "DNS", section: "Interface", kind: "list" },
  { name: "MTU", section: "Interface", kind: "single" },
  { name: "ListenPort", section: "Interface", kind: "single" },
  // Table picks wg-quick's routing table, FwMark marks the tunnel's own packets for that routing,
  // and SaveConfig makes wg-quick write the file back. All three act on the host only.
  { name: "Table", section: "Interface", kind: "ignored" },
  { name: "FwMark", section: "Interface", kind: "ignored" },
  { name: "SaveConfig", section: "Interface", kind: "ignored" },
  // Shell commands that wg-quick runs as root.
  { name: "PreUp", section: "Interface", kind: "hook" },
  { name: "PostUp", section: "Interface", kind: "hook" },
  { name: "PreDown", section: "Interface", kind: "hook" },
  { name: "PostDown", section: "Interface", kind: "hook" },
  { name: "PublicKey", section: "Peer", kind: "single" },
  { name: "PresharedKey", section: "Peer", kind: "single" },
  { name: "AllowedIPs", section: "Peer", kind: "list" },
  { name: "Endpoint", section: "Peer", kind: "single" },
  { name: "PersistentKeepalive", section: "Peer", kind: "single" },
];

const RULES_BY_LOWERCASE_NAME = new Map(KEY_RULES.map((rule) => [rule.name.toLowerCase(), rule]));
const SECRET_KEYS = new Set(["PrivateKey", "PresharedKey"]);

/** Lists the keys of `section` that vpnns uses, for the "unknown key" message. */
function listUsedKeys(section: SectionName): string {
  return KEY_RULES.filter((rule) => rule.section === section && (rule.kind === "single" || rule.kind === "list"))
    .map((rule) => rule.name)
    .join(", ");
}

interface InterfaceDraft {
  line: number;
  privateKey?: string;
  addresses: string[];
  dns: string[];
  dnsSearch: string[];
  mtu?: { value: number; text: string; line: number };
  listenPort?: number;
  /** Line of each single-valued key seen so far, by key name. */
  keyLines: Map<string, number>;
}

interface PeerDraft {
  line: number;
  publicKey?: string;
  presharedKey?: string;
  allowedIPs: string[];
  endpoint?: string;
  persistentKeepalive?: number;
  keyLines: Map<string, number>;
}

type Section = { name: "Interface"; draft: InterfaceDraft } | { name: "Peer"; draft: PeerDraft };

// C0 controls except tab, DEL and C1 controls. Line feeds were split off and a CR before them removed.
const CONTROL_CHARACTER = /[\u0000-\u0008\u000A-\u001F\u007F-\u009F]/;

/**
 * Parses the text of a wg-quick file into the part vpnns uses. `fileName` appears only in
 * messages. Throws a UsageError that names file and line at the first invalid input. Hooks
 * (PreUp, PostUp, PreDown, PostDown) are never run, and they and host-only keys produce warnings.
 */
export function parseWgQuick(text: string, fileName: string): ParseResult {
  return new WgQuickParser(fileName).parse(text);
}

class WgQuickParser {
  private readonly fileName: string;
  private readonly warnings: string[] = [];
  private interfaceDraft: InterfaceDraft | undefined;
  private readonly peers: PeerDraft[] = [];
  /** Line of the [Peer] section of each public key seen so far. */
  private readonly peerLinesByKey = new Map<string, number>();
  private section: Section | undefined;

  constructor(fileName: string) {
    this.fileName = fileName;
  }

  parse(text: string): ParseResult {
    this.checkSize(text);
    const body = text.startsWith("\uFEFF") ? text.slice(1) : text;
    const lines = body.split("\n");
    for (const [index, rawLine] of lines.entries()) {
      const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
      this.parseLine(line, index + 1);
    }
    this.finishSection();
    return { config: this.buildConfig(), warnings: this.warnings };
  }

  private error(line: number | undefined, message: string): UsageError {
    const location = line === undefined ? this.fileName : `${this.fileName}:${line}`;
    return new UsageError(`${location}: ${message}`);
  }

  private invalidValue(line: number, key: string, value: string, reason: string): UsageError {
    return this.error(line, `invalid ${key} ${showValue(value, SECRET_KEYS.has(key))}: ${reason}`);
  }

  private checkSize(text: string): void {
    const bytes = Buffer.byteLength(text, "utf8");
    if (bytes > MAX_CONFIG_BYTES) {
      throw this.error(undefined, `file too large: ${bytes} bytes, at most ${MAX_CONFIG_BYTES} (1 MiB) are allowed`);
    }
  }

  private parseLine(line: string, lineNumber: number): void {
    if (line.length > MAX_LINE_LENGTH) {
      throw this.error(
        lineNumber,
        `line too long: ${line.length} characters, at most ${MAX_LINE_LENGTH} are allowed; split a long list over several lines of the same key`,
      );
    }
    const control = CONTROL_CHARACTER.exec(line);
    if (control !== null) {
      const codePoint = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
      throw this.error(
        lineNumber,
        `invalid control character U+${codePoint} at column ${control.index + 1}; a wg-quick file must be plain text`,
      );
    }

    // Files are decoded leniently, so each byte that is not valid UTF-8 arrives as U+FFFD.
    const replacement = line.indexOf("\uFFFD");
    if (replacement >= 0) {
      throw this.error(
        lineNumber,
        `invalid UTF-8 text at column ${replacement + 1} (shown as U+FFFD); a wg-quick file must be plain text, so save it as UTF-8 or ASCII`,
      );
    }

    const comment = line.indexOf("#");
    const content = (comment < 0 ? line : line.slice(0, comment)).trim();
    if (content === "") return;
    if (content.startsWith("[")) {
      this.startSection(content, lineNumber);
      return;
    }

    const equals = content.indexOf("=");
    if (equals < 0) {
      throw this.error(lineNumber, `invalid line ${showUnrecognized(content, "line")}: expected "Key = Value" or "[Section]"`);
    }
    const key = content.slice(0, equals).trim();
    if (key === "") throw this.error(lineNumber, `invalid line ${showUnrecognized(content, "line")}: missing key before "="`);
    // A space inside the key is usually a missing "=", as in "PrivateKey abc...=", whose "=" is base64 padding.
    if (/\s/.test(key)) {
      throw this.error(lineNumber, `invalid line ${showUnrecognized(content, "line")}: the key before "=" contains a space`);
    }
    this.applyKey(key, content.slice(equals + 1).trim(), lineNumber);
  }

  private startSection(header: string, line: number): void {
    const match = /^\[\s*([^\]]*?)\s*\]$/.exec(header);
    if (match === null) {
      throw this.error(line, `invalid section header ${showUnrecognized(header, "line")}: expected [Interface] or [Peer]`);
    }
    const name = match[1].toLowerCase();
    if (name !== "interface" && name !== "peer") {
      throw this.error(line, `unknown section ${showUnrecognized(header, "section")}; expected [Interface] or [Peer]`);
    }

    this.finishSection();
    const keyLines = new Map<string, number>();
    if (name === "interface") {
      if (this.interfaceDraft !== undefined) {
        throw this.error(line, `second [Interface] section; the first is on line ${this.interfaceDraft.line}, so merge them into one`);
      }
      this.interfaceDraft = { line, addresses: [], dns: [], dnsSearch: [], keyLines };
      this.section = { name: "Interface", draft: this.interfaceDraft };
    } else {
      if (this.peers.length >= MAX_PEERS) {
        throw this.error(line, `too many [Peer] sections: at most ${MAX_PEERS} are allowed`);
      }
      const peer: PeerDraft = { line, allowedIPs: [], keyLines };
      this.peers.push(peer);
      this.section = { name: "Peer", draft: peer };
    }
  }

  private applyKey(key: string, value: string, line: number): void {
    const rule = RULES_BY_LOWERCASE_NAME.get(key.toLowerCase());
    const section = this.section;
    const shownKey = showUnrecognized(key, "key");
    if (rule === undefined) {
      if (section === undefined) throw this.error(line, `unknown key ${shownKey} outside any section`);
      throw this.error(line, `unknown key ${shownKey} in [${section.name}]; expected one of ${listUsedKeys(section.name)}`);
    }
    if (section === undefined) {
      throw this.error(line, `${rule.name} is outside any section; put it under [${rule.section}]`);
    }
    if (rule.section !== section.name) {
      throw this.error(line, `${rule.name} belongs in [${rule.section}], not in [${section.name}]`);
    }
    if (value === "") throw this.error(line, `empty value for ${rule.name}`);

    if (rule.kind === "single") {
      const earlier = section.draft.keyLines.get(rule.name);
      if (earlier !== undefined) {
        throw this.error(line, `${rule.name} given twice, on lines ${earlier} and ${line}; keep one`);
      }
      section.draft.keyLines.set(rule.name, line);
    }

    if (rule.kind === "ignored") {
      this.warnings.push(`${this.fileName}:${line}: ignored ${rule.name}: it only applies to wg-quick on the host`);
    } else if (rule.kind === "hook") {
      this.warnings.push(
        `${this.fileName}:${line}: ${rule.name} command will not be run: vpnns never runs commands from a profile file, because they would run as root`,
      );
    } else if (section.name === "Interface") {
      this.applyInterfaceKey(section.draft, rule.name, value, line);
    } else {
      this.applyPeerKey(section.draft, rule.name, value, line);
    }
  }

  private applyInterfaceKey(draft: InterfaceDraft, key: string, value: string, line: number): void {
    switch (key) {
      case "PrivateKey":
        draft.privateKey = this.checkKey(key, value, line);
        return;
      case "Address":
        for (const entry of this.splitWordList(key, value, line)) {
          const address = normalizeInterfaceAddress(entry);
          if (!address.ok) throw this.invalidValue(line, key, entry, address.reason);
          addUnique(draft.addresses, address.value);
        }
        return;
      case "DNS":
        for (const entry of this.splitWordList(key, value, line)) {
          const dns = parseDnsEntry(entry);
          if (!dns.ok) throw this.invalidValue(line, key, entry, dns.reason);
          if (dns.value.kind === "nameserver") addUnique(draft.dns, dns.value.address);
          else addUnique(draft.dnsSearch, dns.value.domain);
        }
        return;
      case "MTU": {
        const mtu = parseMtu(value);
        if (!mtu.ok) throw this.invalidValue(line, key, value, mtu.reason);
        draft.mtu = { value: mtu.value, text: value, line };
        return;
      }
      case "ListenPort": {
        const port = parseListenPort(value);
        if (!port.ok) throw this.invalidValue(line, key, value, port.reason);
        draft.listenPort = port.value;
        return;
      }
    }
  }

  private applyPeerKey(draft: PeerDraft, key: string, value: string, line: number): void {
    switch (key) {
      case "PublicKey": {
        draft.publicKey = this.checkKey(key, value, line);
        const otherPeerLine = this.peerLinesByKey.get(value);
        if (otherPeerLine !== undefined) {
          throw this.error(line, `PublicKey ${JSON.stringify(value)} is also the PublicKey of the [Peer] on line ${otherPeerLine}; each peer needs its own key`);
        }
        this.peerLinesByKey.set(value, draft.line);
        return;
      }
      case "PresharedKey":
        draft.presharedKey = this.checkKey(key, value, line);
        return;
      case "AllowedIPs":
        for (const entry of this.splitCommaList(key, value, line)) {
          const cidr = parseCidr(entry);
          if (!cidr.ok) throw this.invalidValue(line, key, entry, cidr.reason);
          const network = formatCidr(maskCidr(cidr.value));
          if (network !== formatCidr(cidr.value)) {
            this.warnings.push(`${this.fileName}:${line}: AllowedIPs entry "${entry}" has host bits set; using ${network}`);
          }
          addUnique(draft.allowedIPs, network);
        }
        return;
      case "Endpoint": {
        const endpoint = normalizeEndpoint(value);
        if (!endpoint.ok) throw this.invalidValue(line, key, value, endpoint.reason);
        draft.endpoint = endpoint.value;
        return;
      }
      case "PersistentKeepalive": {
        const seconds = parsePersistentKeepalive(value);
        if (!seconds.ok) throw this.invalidValue(line, key, value, seconds.reason);
        draft.persistentKeepalive = seconds.value;
        return;
      }
    }
  }

  private checkKey(key: string, value: string, line: number): string {
    const checked = validateWireGuardKey(value);
    if (!checked.ok) throw this.invalidValue(line, key, value, checked.reason);
    return checked.value;
  }

  /** Splits an Address or DNS value on commas and whitespace, as wg-quick does, so empty entries vanish. */
  private splitWordList(key: string, value: string, line: number): string[] {
    const entries = value.split(/[\s,]+/).filter((entry) => entry !== "");
    if (entries.length === 0) throw this.invalidValue(line, key, value, "the list has no entries");
    return entries;
  }

  /** Splits an AllowedIPs value on commas. Like wg, it rejects empty entries. */
  private splitCommaList(key: string, value: string, line: number): string[] {
    const entries = value.split(",").map((entry) => entry.trim());
    if (entries.includes("")) throw this.invalidValue(line, key, value, "empty entry in the comma-separated list");
    const spaced = entries.find((entry) => /\s/.test(entry));
    if (spaced !== undefined) throw this.invalidValue(line, key, spaced, "entries must be separated by commas");
    return entries;
  }

  /** Checks the keys that the section just closed must have. */
  private finishSection(): void {
    const section = this.section;
    if (section === undefined) return;
    if (section.name === "Interface") this.finishInterface(section.draft);
    else this.finishPeer(section.draft);
    this.section = undefined;
  }

  private finishInterface(draft: InterfaceDraft): void {
    if (draft.privateKey === undefined) throw this.error(draft.line, "missing PrivateKey in [Interface]");
    if (draft.addresses.length === 0) throw this.error(draft.line, "missing Address in [Interface]");
    // Address lines may follow the MTU line, so the IPv6 minimum is checked once the section is complete.
    const mtu = draft.mtu;
    if (mtu === undefined) return;
    const reason = checkMtuForIpv6(mtu.value, draft.addresses);
    if (reason !== undefined) throw this.invalidValue(mtu.line, "MTU", mtu.text, reason);
  }

  private finishPeer(draft: PeerDraft): void {
    if (draft.publicKey === undefined) throw this.error(draft.line, "missing PublicKey in [Peer]");
    if (draft.allowedIPs.length === 0) {
      const hint = "list the networks to send through this peer, such as 0.0.0.0/0, ::/0";
      throw this.error(draft.line, `missing AllowedIPs in [Peer]; ${hint}`);
    }
  }

  private buildConfig(): WireGuardConfig {
    const draft = this.interfaceDraft;
    if (draft === undefined) {
      throw this.error(undefined, "missing [Interface] section; a wg-quick file needs one with PrivateKey and Address");
    }
    if (this.peers.length === 0) {
      throw this.error(
        undefined,
        "no [Peer] section; vpnns needs at least one peer to carry the namespace's traffic",
      );
    }

    const iface: InterfaceConfig = {
      // finishSection has checked that the key is present.
      privateKey: draft.privateKey as string,
      addresses: draft.addresses,
      dns: draft.dns,
      dnsSearch: draft.dnsSearch,
    };
    if (draft.mtu !== undefined) iface.mtu = draft.mtu.value;
    if (draft.listenPort !== undefined) iface.listenPort = draft.listenPort;
    return { interface: iface, peers: this.peers.map(buildPeer) };
  }
}

function buildPeer(draft: PeerDraft): PeerConfig {
  // finishSection has checked that the public key is present.
  const peer: PeerConfig = { publicKey: draft.publicKey as string, allowedIPs: draft.allowedIPs };
  if (draft.presharedKey !== undefined) peer.presharedKey = draft.presharedKey;
  if (draft.endpoint !== undefined) peer.endpoint = draft.endpoint;
  if (draft.persistentKeepalive !== undefined) peer.persistentKeepalive = draft.persistentKeepalive;
  return peer;
}

function addUnique(list: string[], value: string): void {
  if (!list.includes(value)) list.push(value);
}
