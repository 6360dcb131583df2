/**
 * Per-namespace name resolution. `ip netns exec` bind-mounts the files in /etc/netns/<namespace>
 * over their /etc counterparts, so apps inside read the profile's resolv.conf, and an nsswitch.conf
 * whose hosts line is "files dns" keeps lookups away from the host's systemd-resolved and nscd sockets.
 */
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { InterfaceConfig } from "../profile/types.js";
import { logCommand } from "../core/log.js";

export function renderResolvConf(config: Pick<InterfaceConfig, "dns" | "dnsSearch">, profile: string): string {
  const lines = [`# Written by vpnns for profile ${profile}; removed when the profile goes down.`];
  for (const server of config.dns) lines.push(`nameserver ${server}`);
  if (config.dnsSearch.length > 0) lines.push(`search ${config.dnsSearch.join(" ")}`);
  return lines.join("\n") + "\n";
}

/**
 * Render nsswitch.conf for the namespace from the host's file, with the hosts line replaced, so user
 * and group lookups keep the host's sources (LDAP, sssd, systemd) and only name resolution changes.
 */
export function renderNsswitchConf(hostFile: string, profile: string): string {
  const header = `# Written by vpnns for profile ${profile}: names resolve from /etc/hosts and the profile's DNS only.`;
  const lines = hostFile.split("\n").filter((line) => !/^\s*hosts\s*:/.test(line));
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return [header, ...lines, "hosts: files dns", ""].join("\n");
}

async function readHostNsswitch(): Promise<string> {
  try {
    return await readFile("/etc/nsswitch.conf", "utf8");
  } catch {
    return "passwd: files\ngroup: files\nshadow: files\n";
  }
}

export async function writeDnsFiles(folder: string, profile: string, config: InterfaceConfig): Promise<void> {
  logCommand(`write ${join(folder, "resolv.conf")} and ${join(folder, "nsswitch.conf")}`);
  await mkdir(folder, { recursive: true, mode: 0o755 });
  const files = [
    { name: "resolv.conf", content: renderResolvConf(config, profile) },
    { name: "nsswitch.conf", content: renderNsswitchConf(await readHostNsswitch(), profile) },
  ];
  for (const { name, content } of files) {
    const file = join(folder, name);
    await writeFile(file, content, { mode: 0o644 });
    // Apps run as users and read these files, and the umask of root (077 on hardened machines)
    // would otherwise remove their read permission.
    await chmod(file, 0o644);
  }
}

export async function removeDnsFiles(folder: string): Promise<void> {
  logCommand(`rm -rf ${folder}`);
  await rm(folder, { recursive: true, force: true });
}
