/** The report behind `vpnns status`: a profile's state, tunnel figures, assigned apps and the processes inside. */
import { interfaceName, namespaceName } from "./names.js";
import { isProcessAlive, readState, profilesWithState } from "./state.js";
import { checkHealth } from "./launcher.js";
import { showAllInterfaces, showInterface, type InterfaceStatus } from "../tools/wg.js";
import { processesInsideEach, type ProcessInfo } from "../resources/namespace.js";
import { listProfileNames } from "../profile/store.js";
import { appsOfProfile, readAssignments } from "../apps/assignments.js";
import { appOfProcessName } from "../apps/single-instance.js";
import { reportPublishing, type PublishingReport } from "../publish/report.js";

export interface PeerReport {
  publicKey: string;
  endpoint: string | null;
  /** Seconds since the latest handshake, null when there was none. */
  latestHandshakeAgeSeconds: number | null;
  rxBytes: number;
  txBytes: number;
}

export interface ProcessReport extends ProcessInfo {
  /** Name of the assigned or known app that the process is, matched by its name, such as "firefox", or null. */
  app: string | null;
}

export interface ProfileReport {
  profile: string;
  state: "up" | "down" | "building" | "broken";
  namespace: string;
  interface: string;
  wireguardBackend: string | null;
  firewallBackend: string | null;
  upSince: string | null;
  peers: PeerReport[];
  processes: ProcessReport[];
  /** Apps assigned to the profile with `vpnns app set`, sorted. */
  apps: string[];
  /** Whether `vpnns run` uses this profile for apps without an assignment. */
  isDefault: boolean;
  /** Reasons a profile is "broken" or "building", empty otherwise. */
  problems: string[];
  /** Ports published with `vpnns publish`, and the processes that forward them. */
  publishing: PublishingReport;
}

export async function reportProfile(profile: string, now = Date.now()): Promise<ProfileReport> {
  const [report] = await reportProfiles([profile], now);
  return report!;
}

/** Maximum number of profiles that reportProfiles checks at once, because each check runs two commands. */
const REPORT_CONCURRENCY = 8;

/**
 * Build the reports of several profiles, in the order given. The shared parts run once for all of
 * them: one read of the app assignments, one pass over /proc and one `wg show all` per field.
 */
export async function reportProfiles(profiles: readonly string[], now = Date.now()): Promise<ProfileReport[]> {
  const assignments = await readAssignments();
  const states = await Promise.all(profiles.map((profile) => readState(profile)));
  const namespacesUp = profiles.filter((_, index) => states[index] !== undefined).map(namespaceName);
  const anyUserspace = states.some((state) => state?.wireguardBackend === "wireguard-go");
  const [processes, userspace] = await Promise.all([
    processesInsideEach(namespacesUp),
    anyUserspace ? showAllInterfaces() : new Map<string, InterfaceStatus>(),
  ]);
  return mapConcurrently(profiles, REPORT_CONCURRENCY, async (profile, index) => {
    const namespace = namespaceName(profile);
    const link = interfaceName(profile);
    const state = states[index];
    const apps = appsOfProfile(assignments, profile);
    const report: ProfileReport = {
      profile,
      state: "down",
      namespace,
      interface: link,
      wireguardBackend: state?.wireguardBackend ?? null,
      firewallBackend: state?.firewallBackend ?? null,
      upSince: state?.upAt ?? null,
      peers: [],
      processes: [],
      apps,
      isDefault: assignments.defaultProfile === profile,
      problems: [],
      publishing: await reportPublishing(profile),
    };
    if (!state) return report;

    report.problems = await checkHealth(state);
    // A setup whose process died is not going to finish: report it as broken, not as building.
    if (state.phase === "building" && isProcessAlive(state.ownerPid)) report.state = "building";
    else report.state = report.problems.length > 0 ? "broken" : "up";
    // Kernel WireGuard is reached over netlink, so only from inside the namespace.
    const wireguard = state.wireguardBackend === "wireguard-go" ? userspace.get(link) : await showInterface(namespace, link);
    report.peers = (wireguard?.peers ?? []).map((peer) => ({
      publicKey: peer.publicKey,
      endpoint: peer.endpoint ?? null,
      latestHandshakeAgeSeconds: peer.latestHandshake > 0 ? Math.max(0, Math.round(now / 1000 - peer.latestHandshake)) : null,
      rxBytes: peer.rxBytes,
      txBytes: peer.txBytes,
    }));
    report.processes = (processes.get(namespace) ?? []).map((entry) => ({ ...entry, app: appOfProcessName(entry.command, apps) ?? null }));
    const forwarder = report.processes.find((entry) => entry.pid === report.publishing.forwarderPid);
    if (forwarder) forwarder.app = "vpnns publish forwarder";
    return report;
  });
}

/** Map the items with at most `limit` calls of `action` running at once; results keep the items' order. */
async function mapConcurrently<T, R>(items: readonly T[], limit: number, action: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await action(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** List every stored profile and every profile with runtime state, sorted by name. */
export async function knownProfiles(): Promise<string[]> {
  const names = new Set([...(await listProfileNames()), ...(await profilesWithState())]);
  return [...names].sort();
}
