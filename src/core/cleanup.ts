/**
 * Finding and removing what vpnns made, also after crashed runs: namespaces named vpnns-*, state
 * folders and lock files, /etc/netns/vpnns-* folders, WireGuard links named vns-* in the host
 * namespace with their wireguard-go daemons, and publish supervisors started for this state folder. Anything without those names is left alone.
 */
import { readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { profileOfNamespace, interfaceName, PROFILE_NAME_PATTERN } from "./names.js";
import { stateDir } from "./paths.js";
import { profilesWithState } from "./state.js";
import { down, type TeardownResult } from "./launcher.js";
import { deleteLink, listLinks, showLink } from "../tools/ip.js";
import { listNamespaces } from "../tools/ip.js";
import { stopUserspaceDaemons } from "../resources/wireguard-link.js";
import { profilesWithSupervisors } from "../publish/control.js";

const INTERFACE_PREFIX = "vns-";

/** Profiles with anything left on the machine: state, a namespace, a lock file or DNS files. */
export async function profilesWithLeftovers(): Promise<string[]> {
  const names = new Set(await profilesWithState());
  for (const namespace of await listNamespaces()) {
    const profile = profileOfNamespace(namespace);
    if (profile !== undefined) names.add(profile);
  }
  for (const file of await listFolder(join(stateDir(), "locks"))) {
    if (file.endsWith(".lock")) names.add(file.slice(0, -".lock".length));
  }
  for (const folder of await listFolder("/etc/netns")) {
    const profile = profileOfNamespace(folder);
    if (profile !== undefined) names.add(profile);
  }
  for (const profile of await profilesWithSupervisors()) names.add(profile);
  const valid = new RegExp(PROFILE_NAME_PATTERN);
  return [...names].filter((name) => valid.test(name)).sort();
}

/**
 * Interfaces named vns-* in the host namespace that no listed profile explains: WireGuard or TUN
 * links (wireguard-go makes TUN links) left between their creation and the move into a namespace,
 * and interfaces whose wireguard-go daemon outlived its namespace.
 */
export async function strayInterfaces(profiles: string[]): Promise<string[]> {
  const expected = new Set(profiles.map(interfaceName));
  const stray = new Set<string>();
  for (const link of await listLinks()) {
    if (!link.startsWith(INTERFACE_PREFIX) || expected.has(link)) continue;
    const info = await showLink(link);
    if (info?.linkKind === "wireguard" || info?.linkKind === "tun") stray.add(link);
  }
  for (const name of await userspaceDaemonInterfaces()) if (!expected.has(name)) stray.add(name);
  return [...stray].sort();
}

/**
 * Interfaces of the wireguard-go daemons in this network namespace. vpnns starts every daemon in its
 * own namespace, so a daemon elsewhere belongs to another network stack that shares the PID
 * namespace, such as a container or another test sandbox, and is left alone.
 */
async function userspaceDaemonInterfaces(): Promise<string[]> {
  const ownNamespace = await readlink("/proc/self/ns/net");
  const names: string[] = [];
  for (const entry of await listFolder("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = (await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")).split("\0");
    if (argv[0]?.split("/").pop() !== "wireguard-go") continue;
    if ((await readlink(`/proc/${entry}/ns/net`).catch(() => undefined)) !== ownNamespace) continue;
    const name = argv.slice(1).find((arg) => arg.startsWith(INTERFACE_PREFIX));
    if (name !== undefined) names.push(name);
  }
  return names;
}

export interface CleanupResult {
  profiles: { profile: string; result: TeardownResult }[];
  interfaces: string[];
}

/** Take down every profile with leftovers, then remove stray vns-* interfaces and their daemons. */
export async function cleanup(): Promise<CleanupResult> {
  const profiles = await profilesWithLeftovers();
  const results = [];
  for (const profile of profiles) results.push({ profile, result: await down(profile) });
  const interfaces = await strayInterfaces(profiles);
  for (const link of interfaces) {
    await stopUserspaceDaemons(link);
    if (await showLink(link)) await deleteLink(link);
  }
  return { profiles: results, interfaces };
}

async function listFolder(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch {
    return [];
  }
}
