import type { PublishedPort } from "../publish/spec.js";

/** A WireGuard peer as vpnns stores it. Addresses and networks are normalized CIDR strings. */
export interface PeerConfig {
  publicKey: string;
  presharedKey?: string;
  /** Networks routed to this peer, such as "0.0.0.0/0" or "2001:db8::/32". */
  allowedIPs: string[];
  /** "host:port", "a.b.c.d:port" or "[v6]:port", resolved by wg in the host namespace. */
  endpoint?: string;
  /** Seconds between keepalive packets, 1 to 65535. */
  persistentKeepalive?: number;
}

/** The [Interface] part of a profile. */
export interface InterfaceConfig {
  privateKey: string;
  /** Interface addresses with prefix length, such as "10.64.0.2/32" or "2001:db8::2/128". */
  addresses: string[];
  /** Name server addresses written to the namespace's resolv.conf. */
  dns: string[];
  /** Search domains written to the namespace's resolv.conf. */
  dnsSearch: string[];
  mtu?: number;
  listenPort?: number;
}

/** Parsed contents of a wg-quick file: the part vpnns uses. */
export interface WireGuardConfig {
  interface: InterfaceConfig;
  peers: PeerConfig[];
}

/** A stored profile: a parsed wg-quick file under a validated name. */
export interface Profile extends WireGuardConfig {
  name: string;
  /** Absolute path of the file the profile was imported from. */
  source?: string;
  /** ISO 8601 time of the import. */
  importedAt?: string;
  /** Ports of services inside that `up` publishes on the host. Profiles stored before publishing existed have none. */
  publish?: PublishedPort[];
}
