/**
 * Published ports: the `[host-address:]host-port:namespace-port` form of `vpnns publish`, the entries
 * stored in a profile's `publish` list, and the checks both share.
 */
import { parseIpAddress, type Validated } from "../profile/wgquick.js";

export type PublishProtocol = "tcp" | "udp";

/** One published port: a listener on hostAddress:hostPort in the host namespace, forwarded to namespacePort inside. */
export interface PublishedPort {
  protocol: PublishProtocol;
  /** Canonical IPv4 or IPv6 address the host listener binds, such as "127.0.0.1", "::1" or "0.0.0.0". */
  hostAddress: string;
  hostPort: number;
  namespacePort: number;
}

/** Host address of a spec without one: loopback, so exposing a port to the LAN takes an explicit address. */
export const DEFAULT_HOST_ADDRESS = "127.0.0.1";

/** Maximum number of published ports per profile, far more than a profile's services need. */
export const MAX_PUBLISHED_PORTS = 64;

/** Returns the port number of a decimal text from 1 to 65535, or the reason it is not one. */
export function parsePort(text: string): Validated<number> {
  if (!/^\d{1,5}$/.test(text)) return { ok: false, reason: "a port is a whole number from 1 to 65535" };
  const port = Number(text);
  if (port < 1 || port > 65535) return { ok: false, reason: "a port is a whole number from 1 to 65535" };
  return { ok: true, value: port };
}

/** Returns the canonical form of a host address for a listener, or the reason it is not one. */
export function normalizeHostAddress(text: string): Validated<string> {
  const address = parseIpAddress(text);
  if (!address.ok) return { ok: false, reason: `invalid host address: ${address.reason}` };
  return { ok: true, value: address.value.text };
}

/**
 * Parses `[host-address:]host-port:namespace-port`, where an IPv6 host address is written in
 * brackets (`[::1]:8080:80`). The result has the canonical address and the given protocol.
 */
export function parsePublishSpec(text: string, protocol: PublishProtocol): Validated<PublishedPort> {
  const usage = "expected [host-address:]host-port:namespace-port, such as 8080:80, 192.0.2.7:8080:80 or [::1]:8080:80";
  let addressText = DEFAULT_HOST_ADDRESS;
  let rest = text;
  if (text.startsWith("[")) {
    const close = text.indexOf("]:");
    if (close < 0) return { ok: false, reason: `an IPv6 host address needs "]:" after it; ${usage}` };
    addressText = text.slice(1, close);
    rest = text.slice(close + 2);
    if (!addressText.includes(":")) return { ok: false, reason: `brackets are only for IPv6 addresses; ${usage}` };
  } else {
    const parts = text.split(":");
    if (parts.length === 3) {
      addressText = parts[0]!;
      rest = `${parts[1]}:${parts[2]}`;
    } else if (parts.length > 3) {
      return { ok: false, reason: `write an IPv6 host address in brackets; ${usage}` };
    }
  }
  const ports = rest.split(":");
  if (ports.length !== 2) return { ok: false, reason: usage };
  const address = normalizeHostAddress(addressText);
  if (!address.ok) return address;
  const hostPort = parsePort(ports[0]!);
  if (!hostPort.ok) return { ok: false, reason: `invalid host port ${JSON.stringify(ports[0])}: ${hostPort.reason}` };
  const namespacePort = parsePort(ports[1]!);
  if (!namespacePort.ok) return { ok: false, reason: `invalid namespace port ${JSON.stringify(ports[1])}: ${namespacePort.reason}` };
  return { ok: true, value: { protocol, hostAddress: address.value, hostPort: hostPort.value, namespacePort: namespacePort.value } };
}

/** Formats an entry as `vpnns publish` takes it, with the protocol: "127.0.0.1:8080:80/tcp". */
export function formatPublishedPort(entry: PublishedPort): string {
  const address = entry.hostAddress.includes(":") ? `[${entry.hostAddress}]` : entry.hostAddress;
  return `${address}:${entry.hostPort}:${entry.namespacePort}/${entry.protocol}`;
}

/** Formats the host side of an entry: "127.0.0.1:8080/tcp" or "[::1]:8080/udp". */
export function formatHostSide(entry: Pick<PublishedPort, "protocol" | "hostAddress" | "hostPort">): string {
  const address = entry.hostAddress.includes(":") ? `[${entry.hostAddress}]` : entry.hostAddress;
  return `${address}:${entry.hostPort}/${entry.protocol}`;
}

/**
 * Returns the index of an earlier entry that uses the same host port and protocol, or -1. One host
 * port per protocol keeps `vpnns unpublish <profile> <host-port>` unambiguous, and binding a port on
 * two addresses would clash when one of them is a wildcard address.
 */
export function findDuplicate(entries: readonly PublishedPort[], entry: PublishedPort, skip = -1): number {
  return entries.findIndex((other, index) => index !== skip && other.protocol === entry.protocol && other.hostPort === entry.hostPort);
}
