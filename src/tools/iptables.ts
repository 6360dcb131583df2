/** iptables-restore and ip6tables-restore: the kill-switch where nft is missing. */
import { run } from "./exec.js";
import { netnsExec } from "./ip.js";

/** Replace the filter table of one family in one atomic transaction, as iptables-restore does. */
export async function restoreFilter(namespace: string, family: "ipv4" | "ipv6", rules: string): Promise<void> {
  const tool = family === "ipv4" ? "iptables-restore" : "ip6tables-restore";
  await run([...netnsExec(namespace), tool], {
    intent: `apply the ${family} iptables kill-switch in ${namespace}`,
    input: rules,
    mutates: true,
  });
}

/** Return `iptables-save -t filter` output of one family, or undefined when the tool fails. */
export async function saveFilter(namespace: string, family: "ipv4" | "ipv6"): Promise<string | undefined> {
  const tool = family === "ipv4" ? "iptables-save" : "ip6tables-save";
  const result = await run([...netnsExec(namespace), tool, "-t", "filter"], {
    intent: `read the ${family} iptables rules in ${namespace}`,
    allowFailure: true,
  });
  return result.failed ? undefined : result.stdout;
}
