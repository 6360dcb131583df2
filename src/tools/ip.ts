/** iproute2: namespaces, links, addresses and routes. */
import { readFile } from "node:fs/promises";
import { run } from "./exec.js";
import { logCommand } from "../core/log.js";

export async function listNamespaces(): Promise<string[]> {
  const { stdout } = await run(["ip", "-j", "netns", "list"], { intent: "list network namespaces" });
  if (stdout.trim() === "") return [];
  return (JSON.parse(stdout) as { name: string }[]).map((entry) => entry.name);
}

export async function addNamespace(namespace: string): Promise<void> {
  await run(["ip", "netns", "add", namespace], { intent: `create namespace ${namespace}`, mutates: true });
}

export async function deleteNamespace(namespace: string): Promise<void> {
  await run(["ip", "netns", "delete", namespace], { intent: `delete namespace ${namespace}`, mutates: true });
}

export interface LinkInfo {
  ifname: string;
  flags: string[];
  operstate: string;
  mtu: number;
  linkKind: string | undefined;
}

/** Return the named link, or undefined when the namespace (or the host namespace) has none by that name. */
export async function showLink(name: string, namespace?: string): Promise<LinkInfo | undefined> {
  const argv = ["ip", ...namespaceArgs(namespace), "-j", "-d", "link", "show", "dev", name];
  const result = await run(argv, { intent: `show link ${name}`, allowFailure: true });
  if (result.failed) return undefined;
  const [link] = JSON.parse(result.stdout) as { ifname: string; flags: string[]; operstate: string; mtu: number; linkinfo?: { info_kind?: string } }[];
  if (!link) return undefined;
  return { ifname: link.ifname, flags: link.flags, operstate: link.operstate, mtu: link.mtu, linkKind: link.linkinfo?.info_kind };
}

/**
 * Check whether vpnns's own network namespace has a link of that name, from /proc/self/net/dev,
 * which lists every link of the reader's network namespace by its name, up or down. Costs one read
 * instead of an `ip link show` process. Unlike ip, it does not match a link's alternative names.
 */
export async function hasLinkHere(name: string): Promise<boolean> {
  const table = await readFile("/proc/self/net/dev", "utf8");
  // Two header lines, then one "NAME: counters" line per link. A link name never contains ":".
  return table
    .split("\n")
    .slice(2)
    .some((line) => line.slice(0, line.indexOf(":")).trim() === name);
}

/** Names of every link in a namespace. */
export async function listLinks(namespace?: string): Promise<string[]> {
  const { stdout } = await run(["ip", ...namespaceArgs(namespace), "-j", "link", "show"], { intent: "list links" });
  return (JSON.parse(stdout) as { ifname: string }[]).map((link) => link.ifname);
}

export async function deleteLink(name: string, namespace?: string): Promise<void> {
  await run(["ip", ...namespaceArgs(namespace), "link", "delete", "dev", name], {
    intent: `delete link ${name}`,
    mutates: true,
  });
}

/**
 * Run several ip commands in one process with `ip -batch`. Each line is an argument array without
 * the leading "ip"; ip stops at the first failing line and names it in its stderr.
 */
export async function batch(lines: string[][], options: { namespace?: string; intent: string }): Promise<void> {
  const prefix = ["ip", ...namespaceArgs(options.namespace)];
  for (const line of lines) logCommand([...prefix, ...line].join(" "));
  const input = lines.map((line) => line.join(" ")).join("\n") + "\n";
  await run([...prefix, "-batch", "-"], { intent: options.intent, input });
}

export function namespaceArgs(namespace: string | undefined): string[] {
  return namespace === undefined ? [] : ["-n", namespace];
}

/** Prefix that runs a program inside a namespace with its /etc/netns files applied. */
export function netnsExec(namespace: string): string[] {
  return ["ip", "netns", "exec", namespace];
}
