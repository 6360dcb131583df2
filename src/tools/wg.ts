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

/**
 * Parse `wg show all dump`, whose lines start with the interface name, into the status of each
 * interface. Secrets are dropped as in parseDump.
 */
export function parseAllDump(dump: string): Map<string, InterfaceStatus> {
  const linesOf = new Map<string, string[]>();
  for (const line of dump.split("\n")) {
    const tab = line.indexOf("\t");
    if (tab <= 0) continue;
    const name = line.slice(0, tab);
    if (!linesOf.has(name)) linesOf.set(name, []);
    linesOf.get(name)!.push(line.slice(tab + 1));
  }
  return new Map([...linesOf].map(([name, lines]) => [name, parseDump(lines.join("\n"))]));
}

/**
 * Read every interface that `wg` finds from vpnns's own namespace: kernel interfaces there, and
 * every wireguard-go interface, whose control socket in /run/wireguard serves all namespaces.
 * One process replaces one `ip netns exec … wg show` per wireguard-go profile.
 */
export async function showAllInterfaces(): Promise<Map<string, InterfaceStatus>> {
  const result = await run(["wg", "show", "all", "dump"], { intent: "read the WireGuard interfaces", allowFailure: true });
  // wg reports an interface it cannot read on stderr and still prints the others.
  return parseAllDump(result.stdout);
}
