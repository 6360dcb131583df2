/** The report behind `vpnns status`: a profile's state, tunnel figures, assigned apps and the processes inside. */
import { setImmediate as nextTurn } from "node:timers/promises";
import { interfaceName, namespaceName } from "./names.js";
import { isProcessAlive, readState, profilesWithState } from "./state.js";
import { checkHealthOfEach, hasExpectedNames } from "./health.js";
import { mergeShowFields, WG_SHOW_TIMEOUT_SECONDS } from "../tools/wg.js";
import { readPeers } from "../tools/uapi.js";
import { namespaceExists, processesInsideEach, type ProcessInfo } from "../resources/namespace.js";
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

/** The fields of `wg show IF FIELD` that a report shows, none of which prints a key. */
const WG_SHOW_FIELDS = ["latest-handshakes", "endpoints", "transfer"] as const;

/**
 * Build the reports of several profiles, in the order given. The shared parts run once for all of
 * them: one read of the app assignments, one pass over /proc, and the health checks in a few
 * batched processes, which also run `wg show` inside the namespaces of kernel WireGuard.
 */
export async function reportProfiles(profiles: readonly string[], now = Date.now()): Promise<ProfileReport[]> {
  const [assignments, states] = await Promise.all([readAssignments(), Promise.all(profiles.map((profile) => readState(profile)))]);
  const namespacesUp = profiles.filter((_, index) => states[index] !== undefined).map(namespaceName);
  // Kernel WireGuard is reached over netlink, so only from inside the namespace. wireguard-go is
  // read over its control socket, without a process.
  // A record with names that vpnns would not derive is reported as a problem, and nothing is read.
  const kernelReads = await Promise.all(
    states.map(async (state) => state !== undefined && hasExpectedNames(state) && state.wireguardBackend !== "wireguard-go" && (await namespaceExists(state.namespace))),
  );
  // coreutils timeout ends a wg that waits on an unresponsive control socket, which would otherwise
  // hold up its whole batch.
  const wgCommands = states.flatMap((state, index) =>
    kernelReads[index]
      ? WG_SHOW_FIELDS.map((field) => ({ namespace: state!.namespace, argv: ["timeout", String(WG_SHOW_TIMEOUT_SECONDS), "wg", "show", state!.interfaceName, field] }))
      : [],
  );
  // The pass over /proc comes before the checks, whose own processes would show up inside.
  const processes = await processesInsideEach(namespacesUp);
  const checking = checkHealthOfEach(states, wgCommands);
  // Awaited below: the handler only keeps a failure that comes early from counting as unhandled.
  checking.catch(() => {});
  // The batches start within this turn of the event loop. The reads below start in the next one,
  // so that opening 50 files and sockets does not delay the processes that take longest.
  await nextTurn();
  const [health, publishing, userspace] = await Promise.all([
    checking,
    Promise.all(profiles.map((profile) => reportPublishing(profile))),
    Promise.all(states.map((state) => (state?.wireguardBackend === "wireguard-go" && hasExpectedNames(state) ? readPeers(state.interfaceName) : undefined))),
  ]);

  let nextWgResult = 0;
  return profiles.map((profile, index) => {
    const namespace = namespaceName(profile);
    const state = states[index];
    const apps = appsOfProfile(assignments, profile);
    const report: ProfileReport = {
      profile,
      state: "down",
      namespace,
      interface: interfaceName(profile),
      wireguardBackend: state?.wireguardBackend ?? null,
      firewallBackend: state?.firewallBackend ?? null,
      upSince: state?.upAt ?? null,
      peers: [],
      processes: [],
      apps,
      isDefault: assignments.defaultProfile === profile,
      problems: [],
      publishing: publishing[index]!,
    };
    if (!state) return report;

    report.problems = health.problems[index]!;
    // A setup whose process died is not going to finish: report it as broken, not as building.
    if (state.phase === "building" && isProcessAlive(state.ownerPid)) report.state = "building";
    else report.state = report.problems.length > 0 ? "broken" : "up";
    let wireguard = userspace[index];
    if (kernelReads[index]) {
      const [handshakes, endpoints, transfer] = health.extra.slice(nextWgResult, (nextWgResult += WG_SHOW_FIELDS.length));
      if (!handshakes!.failed && !endpoints!.failed && !transfer!.failed) wireguard = mergeShowFields(handshakes!.stdout, endpoints!.stdout, transfer!.stdout);
    }
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

/** List every stored profile and every profile with runtime state, sorted by name. */
export async function knownProfiles(): Promise<string[]> {
  const names = new Set([...(await listProfileNames()), ...(await profilesWithState())]);
  return [...names].sort();
}
