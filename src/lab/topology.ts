/** Fixed addresses, names and ports of the lab, shared by the lab and its servers process. */

/** The uplink between the current namespace ("host") and the provider namespace. */
export const HOST_ADDRESS4 = "198.18.0.1";
export const HOST_ADDRESS6 = "2001:db8:1::1";
export const PROVIDER_UPLINK_ADDRESS4 = "198.18.0.2";
export const PROVIDER_UPLINK_ADDRESS6 = "2001:db8:1::2";
export const UPLINK_PREFIX4 = 24;
export const UPLINK_PREFIX6 = 64;

/** The tunnel network: the provider's WireGuard interface and its clients. */
export const SERVICE_ADDRESS4 = "192.0.2.1";
export const SERVICE_ADDRESS6 = "2001:db8:2::1";
export const TUNNEL_PREFIX4 = 24;
export const TUNNEL_PREFIX6 = 64;
/** Client n (from 0) gets host number FIRST_CLIENT_HOST + n in both families. */
export const FIRST_CLIENT_HOST = 10;
export const LAST_CLIENT_HOST = 254;

export const WIREGUARD_PORT = 51820;
export const SERVICE_HTTP_PORT = 80;
export const HOST_HTTP_PORT = 8080;

/** Served by the lab's DNS server with the service addresses. */
export const SERVICE_NAME = "web.vpnns.test";
/** Served by the lab's DNS server with the host-side uplink addresses. */
export const HOST_NAME = "host.vpnns.test";

/** Names reported by `GET /` of the provider's and the host side's HTTP services. */
export const PROVIDER_SERVICE = "vpnns-lab";
export const HOST_SERVICE = "vpnns-lab-host";

/** Line the servers process prints on stdout once every socket is bound. */
export const READY_LINE = "ready";

/** Returns the IPv4 address of a client with the given host number, such as "192.0.2.10". */
export function clientAddress4(hostNumber: number): string {
  return `192.0.2.${hostNumber}`;
}

/** Returns the IPv6 address with the same host number, written in hex: 10 gives "2001:db8:2::a". */
export function clientAddress6(hostNumber: number): string {
  return `2001:db8:2::${hostNumber.toString(16)}`;
}
