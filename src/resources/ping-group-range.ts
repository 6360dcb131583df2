/**
 * net.ipv4.ping_group_range: the group ids that may open ICMP echo ("ping") datagram sockets
 * without CAP_NET_RAW, which is how ping works for normal users on systems that give ping no
 * capability. Each network namespace has its own value, and a new one starts at "1 0", which
 * allows no group (Documentation/networking/ip-sysctl.rst in the Linux source). So `up` copies
 * the host's value into the profile's namespace.
 */
import { readFile } from "node:fs/promises";
import { netnsExec } from "../tools/ip.js";
import type { PlannedCommand } from "./wireguard-link.js";

const PING_GROUP_RANGE_FILE = "/proc/sys/net/ipv4/ping_group_range";

/**
 * Read the value of the namespace vpnns runs in, as "low high". Returns undefined when the kernel
 * has no such setting or the file contains something other than two group ids.
 */
export async function readPingGroupRange(file = PING_GROUP_RANGE_FILE): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return undefined;
  }
  const match = /^\s*(\d+)\s+(\d+)\s*$/.exec(text);
  return match === null ? undefined : `${match[1]} ${match[2]}`;
}

/** Plan the command that sets the range inside a namespace. */
export function planPingGroupRange(namespace: string, range: string): PlannedCommand {
  return {
    argv: [...netnsExec(namespace), "sysctl", "-q", "-w", `net.ipv4.ping_group_range=${range}`],
    options: { intent: `copy net.ipv4.ping_group_range (${range}) into ${namespace}`, mutates: true },
  };
}
