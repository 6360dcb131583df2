/** The published ports of a profile as `vpnns status` reports them. */
import { loadPublishList } from "../profile/store.js";
import { findSupervisors, readPublishStatus } from "./control.js";
import { publishDir } from "./files.js";
import { pathExists } from "../core/files.js";
import { stateDir } from "../core/paths.js";
import type { PublishedPort } from "./spec.js";

export interface PublishedPortReport extends PublishedPort {
  /** Whether the host listener is open; false while the profile is down. */
  listening: boolean;
  /** Reason the listener is not open, or null. */
  error: string | null;
}

export interface PublishingReport {
  /** The profile's publish list, with the state of each host listener. */
  ports: PublishedPortReport[];
  /** PID of the supervisor in the host namespace, or null when none runs. */
  supervisorPid: number | null;
  /** PID of the forwarder inside the namespace, or null when none runs. */
  forwarderPid: number | null;
  /** How often the supervisor started the forwarder again after it ended. */
  forwarderRestarts: number;
}

/** Report the stored publish list of a profile and, when a supervisor runs, what it has open. */
export async function reportPublishing(profile: string): Promise<PublishingReport> {
  const stored = await loadPublishList(profile);
  // Without a publish folder no supervisor runs, so the scan of /proc is skipped.
  const supervisors = (await pathExists(publishDir(stateDir(), profile))) ? await findSupervisors(profile) : [];
  const status = supervisors.length > 0 ? await readPublishStatus(profile) : undefined;
  const ports = stored.map((entry): PublishedPortReport => {
    const applied = status?.ports.find((port) => port.protocol === entry.protocol && port.hostPort === entry.hostPort);
    return { ...entry, listening: applied?.listening ?? false, error: applied?.error ?? null };
  });
  return {
    ports,
    supervisorPid: supervisors[0] ?? null,
    forwarderPid: status?.forwarderPid ?? null,
    forwarderRestarts: status?.forwarderRestarts ?? 0,
  };
}
