/**
 * The setup of a profile as an ordered list of steps. Each step lists the external commands it runs,
 * so tests can compare the plans of kernel WireGuard and wireguard-go without running them.
 */
import type { Profile } from "../profile/types.js";
import { interfaceName, namespaceName } from "./names.js";
import { renderIptablesRules, renderNftRuleset, type FirewallBackend } from "../resources/firewall.js";
import { planCreateLink, planMoveLink, renderWgConfig, secretsOf, type PlannedCommand, type WireGuardBackend } from "../resources/wireguard-link.js";
import { netnsExec } from "../tools/ip.js";
import { planPingGroupRange } from "../resources/ping-group-range.js";
import { profileStateDir } from "./paths.js";
import { join } from "node:path";

export const DEFAULT_MTU = 1420;

export type StepId = "namespace" | "firewall" | "link" | "configure" | "move" | "addresses" | "dns" | "mounts" | "handshake";

export interface PlannedStep {
  id: StepId;
  /** Action of the step, as it reads after "failed to". */
  description: string;
  /** Commands run in order; steps without commands (DNS files, app mounts, the handshake wait) do their work in code. */
  commands: PlannedCommand[];
}

export interface PlanOptions {
  /** The backend that creates the link; "auto" plans the kernel command, tried first. */
  wireguardBackend: WireGuardBackend;
  firewallBackend: FirewallBackend;
  /** The host's net.ipv4.ping_group_range ("low high"), copied into the namespace unless undefined. */
  pingGroupRange?: string;
}

/** Return the path of the `wg setconf` input, which exists only while the command runs. */
export function wgConfigFile(profile: string): string {
  return join(profileStateDir(profile), "wg-setconf.conf");
}

export function hasIpv6(profile: Profile): boolean {
  return profile.interface.addresses.some((address) => address.includes(":"));
}

/** Plan every step of `vpnns up` for a profile. */
export function planUp(profile: Profile, options: PlanOptions): PlannedStep[] {
  const namespace = namespaceName(profile.name);
  const link = interfaceName(profile.name);
  return [
    {
      id: "namespace",
      description: `create namespace ${namespace}`,
      commands: [
        { argv: ["ip", "netns", "add", namespace], options: { intent: `create namespace ${namespace}`, mutates: true } },
        { argv: ["ip", "-n", namespace, "link", "set", "dev", "lo", "up"], options: { intent: `bring up loopback in ${namespace}`, mutates: true } },
        ...(options.pingGroupRange === undefined ? [] : [planPingGroupRange(namespace, options.pingGroupRange)]),
      ],
    },
    { id: "firewall", description: `install the kill-switch in ${namespace}`, commands: planKillSwitch(profile, namespace, link, options.firewallBackend) },
    { id: "link", description: `create WireGuard interface ${link}`, commands: [planCreateLink(options.wireguardBackend, link)] },
    {
      id: "configure",
      description: `configure WireGuard interface ${link}`,
      commands: [
        {
          // wg reads the configuration from a path, and Node gives a child's stdin as a socket that
          // cannot be opened by path: so the keys go through a 0600 file in the 0700 state folder.
          argv: ["wg", "setconf", link, wgConfigFile(profile.name)],
          options: { intent: `configure WireGuard interface ${link}`, mutates: true, secrets: secretsOf(profile) },
          secretFile: { path: wgConfigFile(profile.name), content: renderWgConfig(profile) },
        },
      ],
    },
    { id: "move", description: `move ${link} into ${namespace}`, commands: [planMoveLink(link, namespace)] },
    {
      id: "addresses",
      description: `set addresses, MTU and routes of ${link}`,
      commands: [
        {
          argv: ["ip", "-n", namespace, "-batch", "-"],
          options: { intent: `set addresses, MTU and routes of ${link} in ${namespace}`, input: renderIpBatch(profile, link), mutates: true },
        },
      ],
    },
    { id: "dns", description: `write DNS files for ${namespace}`, commands: [] },
    { id: "mounts", description: `create the mount namespace of apps in ${namespace}`, commands: [] },
    { id: "handshake", description: `wait for the first handshake on ${link}`, commands: [] },
  ];
}

function planKillSwitch(profile: Profile, namespace: string, link: string, backend: FirewallBackend): PlannedCommand[] {
  const options = { interfaceName: link, ipv6: hasIpv6(profile) };
  if (backend === "nft") {
    return [
      {
        argv: [...netnsExec(namespace), "nft", "-f", "-"],
        // The namespace step has just created the namespace, so there is no table to replace.
        options: { intent: `apply the nftables kill-switch in ${namespace}`, input: renderNftRuleset(options, { replace: false }), mutates: true },
      },
    ];
  }
  return (["ipv4", "ipv6"] as const).map((family) => ({
    argv: [...netnsExec(namespace), family === "ipv4" ? "iptables-restore" : "ip6tables-restore"],
    options: { intent: `apply the ${family} iptables kill-switch in ${namespace}`, input: renderIptablesRules(options, family), mutates: true },
  }));
}

/**
 * Render the `ip -batch` input that gives the link its addresses, MTU and routes: one route per
 * allowed network of every peer, so a default route exists only where 0.0.0.0/0 or ::/0 is allowed.
 */
export function renderIpBatch(profile: Profile, link: string): string {
  const lines: string[] = [];
  for (const address of profile.interface.addresses) {
    lines.push(`address add ${address} dev ${link}`);
  }
  lines.push(`link set dev ${link} mtu ${profile.interface.mtu ?? DEFAULT_MTU} up`);
  const networks = new Set(profile.peers.flatMap((peer) => peer.allowedIPs));
  // ip picks the family from each address; `ip -batch` accepts no -4 or -6 on its lines.
  for (const network of networks) lines.push(`route replace ${network} dev ${link}`);
  return lines.join("\n") + "\n";
}
