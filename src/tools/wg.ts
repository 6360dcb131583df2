/**
 * wireguard-tools: configure and read WireGuard interfaces. Reads request single fields from
 * `wg show`, never `dump` or `showconf`, which print the private and preshared keys. So no key
 * passes through a pipe that a debug log (NODE_DEBUG=execa or stream) could print.
 */
import { run } from "./exec.js";
import { netnsExec } from "./ip.js";

export async function setPersistentKeepalive(options: { namespace: string; interfaceName: string; publicKey: string; seconds: number }): Promise<void> {
  const value = options.seconds === 0 ? "off" : String(options.seconds);
  await run([...netnsExec(options.namespace), "wg", "set", options.interfaceName, "peer", options.publicKey, "persistent-keepalive", value], {
    intent: `set keepalive of peer ${options.publicKey} on ${options.interfaceName}`,
    mutates: true,
  });
}

/** A peer's tunnel figures as `wg show` reports them. */
export interface PeerStatus {
  publicKey: string;
  endpoint: string | undefined;
  /** Seconds since the epoch of the latest handshake, 0 when there was none. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
}

export interface InterfaceStatus {
  peers: PeerStatus[];
}

/** Fields of `wg show IF FIELD` that carry no secret. */
type ShowField = "latest-handshakes" | "endpoints" | "transfer";

/** Parse the output of `wg show IF FIELD`: one line per peer, the public key and tab-separated values. */
export function parseShowField(output: string): Map<string, string[]> {
  const peers = new Map<string, string[]>();
  for (const line of output.split("\n")) {
    if (line === "") continue;
    const [publicKey = "", ...values] = line.split("\t");
    peers.set(publicKey, values);
  }
  return peers;
}

/**
 * Merge the outputs of `wg show IF latest-handshakes`, `endpoints` and `transfer` into one entry
 * per peer, in the order of the handshake output.
 */
export function mergeShowFields(handshakes: string, endpoints: string, transfer: string): InterfaceStatus {
  const endpointsByPeer = parseShowField(endpoints);
  const transferByPeer = parseShowField(transfer);
  const peers = [...parseShowField(handshakes)].map(([publicKey, [handshake = "0"]]): PeerStatus => {
    const endpoint = endpointsByPeer.get(publicKey)?.[0];
    const [rx = "0", tx = "0"] = transferByPeer.get(publicKey) ?? [];
    return {
      publicKey,
      endpoint: endpoint === undefined || endpoint === "(none)" ? undefined : endpoint,
      latestHandshake: Number(handshake),
      rxBytes: Number(rx),
      txBytes: Number(tx),
    };
  });
  return { peers };
}

/**
 * Run `wg show IF FIELD` inside the namespace, because kernel WireGuard is reached over netlink
 * there (wireguard-go through its socket in /run/wireguard, from any namespace). Returns undefined
 * when wg fails, as it does for an interface that does not exist.
 */
/**
 * Time limit of a `wg show` run. wg talks to wireguard-go over its control socket when one exists
 * for the name, even for a kernel link, and waits without a limit on a daemon that does not reply.
 */
export const WG_SHOW_TIMEOUT_SECONDS = 5;

async function showField(namespace: string, interfaceName: string, field: ShowField): Promise<string | undefined> {
  const result = await run([...netnsExec(namespace), "wg", "show", interfaceName, field], {
    intent: `read ${field} of WireGuard interface ${interfaceName}`,
    allowFailure: true,
    timeout: WG_SHOW_TIMEOUT_SECONDS * 1000,
  });
  return result.failed ? undefined : result.stdout;
}

/** Read the latest handshake of each peer, in seconds since the epoch (0 for none), or undefined when wg fails. */
export async function readLatestHandshakes(namespace: string, interfaceName: string): Promise<Map<string, number> | undefined> {
  const output = await showField(namespace, interfaceName, "latest-handshakes");
  if (output === undefined) return undefined;
  return new Map([...parseShowField(output)].map(([publicKey, [seconds = "0"]]) => [publicKey, Number(seconds)]));
}

/** Read each peer's endpoint, latest handshake and transfer, or undefined when wg fails. */
export async function showInterface(namespace: string, interfaceName: string): Promise<InterfaceStatus | undefined> {
  const [handshakes, endpoints, transfer] = await Promise.all(
    (["latest-handshakes", "endpoints", "transfer"] as const).map((field) => showField(namespace, interfaceName, field)),
  );
  if (handshakes === undefined || endpoints === undefined || transfer === undefined) return undefined;
  return mergeShowFields(handshakes, endpoints, transfer);
}
