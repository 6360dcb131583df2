/** nftables: apply and inspect rulesets inside a namespace. */
import { run } from "./exec.js";
import { netnsExec } from "./ip.js";

/** Apply a ruleset in one atomic transaction: nft applies the whole input or none of it. */
export async function applyRuleset(namespace: string, ruleset: string): Promise<void> {
  await run([...netnsExec(namespace), "nft", "-f", "-"], {
    intent: `apply the nftables kill-switch in ${namespace}`,
    input: ruleset,
    mutates: true,
  });
}

/** Return the named table's ruleset as nft prints it, or undefined when it does not exist. */
export async function listTable(namespace: string, family: string, table: string): Promise<string | undefined> {
  const result = await run([...netnsExec(namespace), "nft", "list", "table", family, table], {
    intent: `list nftables table ${family} ${table} in ${namespace}`,
    allowFailure: true,
  });
  return result.failed ? undefined : result.stdout;
}

/** Return the named table as `nft -j` prints it, one JSON document, or undefined when it does not exist. */
export async function listTableJson(namespace: string, family: string, table: string): Promise<string | undefined> {
  const result = await run([...netnsExec(namespace), "nft", "-j", "list", "table", family, table], {
    intent: `list nftables table ${family} ${table} in ${namespace}`,
    allowFailure: true,
  });
  return result.failed ? undefined : result.stdout;
}
