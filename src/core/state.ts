/**
 * The runtime record of a profile that is up or being built, in <state>/<profile>/state.json.
 * A record whose phase is "building" and whose owner process is gone marks a crashed setup.
 */
import { mkdir, readFile, rm, writeFile, readdir, rename } from "node:fs/promises";
import { join } from "node:path";
import { profileStateDir, stateDir } from "./paths.js";
import type { WireGuardBackend } from "../resources/wireguard-link.js";
import type { FirewallBackend } from "../resources/firewall.js";
import { pathExists } from "./files.js";

export interface ProfileState {
  profile: string;
  namespace: string;
  interfaceName: string;
  phase: "building" | "up";
  /** PID of the vpnns process that builds the profile. */
  ownerPid: number;
  wireguardBackend?: WireGuardBackend;
  /** PID of the wireguard-go daemon, so that checks and `down` need no scan of /proc. */
  wireguardPid?: number;
  firewallBackend?: FirewallBackend;
  ipv6: boolean;
  /** ISO 8601 time the setup started. */
  startedAt: string;
  /** ISO 8601 time the profile became usable. */
  upAt?: string;
  /** Set when `vpnns run` brought the profile up: the last run to finish takes it down again. */
  autoDown?: boolean;
}

function stateFile(profile: string): string {
  return join(profileStateDir(profile), "state.json");
}

/**
 * Read the record of a profile. Returns undefined when there is none, when it is not valid JSON,
 * and when it is not an object of this profile. The other fields are not checked here.
 */
export async function readState(profile: string): Promise<ProfileState | undefined> {
  let record: unknown;
  try {
    record = JSON.parse(await readFile(stateFile(profile), "utf8"));
  } catch {
    return undefined;
  }
  if (typeof record !== "object" || record === null || (record as { profile?: unknown }).profile !== profile) return undefined;
  return record as ProfileState;
}

/** Write the record atomically: a reader sees the old or the new file, never a partial one. */
export async function writeState(state: ProfileState): Promise<void> {
  const folder = profileStateDir(state.profile);
  await mkdir(folder, { recursive: true, mode: 0o700 });
  const temporary = join(folder, `state.json.${process.pid}`);
  await writeFile(temporary, JSON.stringify(state, null, 2) + "\n", { mode: 0o600 });
  await rename(temporary, stateFile(state.profile));
}

export async function removeState(profile: string): Promise<void> {
  await rm(profileStateDir(profile), { recursive: true, force: true });
}

/** Profiles that have a state folder: up, being built, or left by a crashed run. */
export async function profilesWithState(): Promise<string[]> {
  try {
    const entries = await readdir(stateDir(), { withFileTypes: true });
    return entries.filter((entry) => entry.isDirectory() && entry.name !== "locks").map((entry) => entry.name);
  } catch {
    return [];
  }
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * `vpnns run` registers itself in <state>/<profile>/runs/<pid> while its app runs, so that another
 * run's automatic teardown leaves a profile alone while a run is starting or running.
 */
export async function registerRun(profile: string): Promise<void> {
  const folder = join(profileStateDir(profile), "runs");
  await mkdir(folder, { recursive: true, mode: 0o700 });
  await writeFile(join(folder, String(process.pid)), "", { mode: 0o600 });
}

export async function unregisterRun(profile: string): Promise<void> {
  await rm(join(profileStateDir(profile), "runs", String(process.pid)), { force: true });
}

/** Check whether this process's run is still registered: a teardown removes every registration. */
export async function isRunRegistered(profile: string): Promise<boolean> {
  return pathExists(join(profileStateDir(profile), "runs", String(process.pid)));
}

/**
 * Remove the registrations of every run. A teardown does this before it ends the processes inside,
 * so each run whose app it ends finds its registration gone and can report why the app ended.
 */
export async function removeRunRegistrations(profile: string): Promise<void> {
  await rm(join(profileStateDir(profile), "runs"), { recursive: true, force: true });
}

/** PIDs of other live vpnns runs registered on the profile. */
export async function otherLiveRuns(profile: string): Promise<number[]> {
  let entries: string[];
  try {
    entries = await readdir(join(profileStateDir(profile), "runs"));
  } catch {
    return [];
  }
  return entries.map(Number).filter((pid) => pid !== process.pid && Number.isInteger(pid) && isProcessAlive(pid));
}
