/** wireguard-tools: configure and read WireGuard interfaces. */
import { run } from "./exec.js";
import { netnsExec } from "./ip.js";

export async function setPersistentKeepalive(options: { namespace: string; interfaceName: string; publicKey: string; seconds: number }): Promise<void> {
  const value = options.seconds === 0 ? "off" : String(options.seconds);
  await run([...netnsExec(options.namespace), "wg", "set", options.interfaceName, "peer", options.publicKey, "persistent-keepalive", value], {
    intent: `set keepalive of peer ${options.publicKey} on ${options.interfaceName}`,
    mutates: true,
  });
}

/** A peer as `wg show dump` reports it, without the preshared key. */
export interface PeerStatus {
  publicKey: string;
  endpoint: string | undefined;
  allowedIPs: string[];
  /** Seconds since the epoch of the latest handshake, 0 when there was none. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number | undefined;
}

export interface InterfaceStatus {
  publicKey: string;
  listenPort: number;
  peers: PeerStatus[];
}

/**
 * Parse `wg show IF dump`. The first line carries the private key and each peer line its preshared
 * key: both are dropped here so that no secret leaves this function.
 */
export function parseDump(dump: string): InterfaceStatus {
  const [head = "", ...peerLines] = dump.split("\n").filter((line) => line !== "");
  const [, publicKey = "", listenPort = "0"] = head.split("\t");
  const peers = peerLines.map((line): PeerStatus => {
    const [key = "", , endpoint, allowed = "", handshake = "0", rx = "0", tx = "0", keepalive = "off"] = line.split("\t");
    return {
      publicKey: key,
      endpoint: endpoint === "(none)" ? undefined : endpoint,
      allowedIPs: allowed === "(none)" ? [] : allowed.split(","),
      latestHandshake: Number(handshake),
      rxBytes: Number(rx),
      txBytes: Number(tx),
      persistentKeepalive: keepalive === "off" ? undefined : Number(keepalive),
    };
  });
  return { publicKey, listenPort: Number(listenPort), peers };
}

/**
 * Read an interface's status from inside its namespace, because kernel WireGuard is reached over
 * netlink there. wireguard-go is reached through its socket in /run/wireguard from any namespace.
 */
export async function showInterface(namespace: string, interfaceName: string): Promise<InterfaceStatus | undefined> {
  const result = await run([...netnsExec(namespace), "wg", "show", interfaceName, "dump"], {
    intent: `read WireGuard interface ${interfaceName}`,
    allowFailure: true,
  });
  return result.failed ? undefined : parseDump(result.stdout);
}
