/**
 * Starting, updating, finding and stopping a profile's publish supervisor from vpnns commands.
 * The supervisor is a detached process in the host namespace (see supervisor.ts) found by its
 * command line, which names the profile and the state folder, in this network namespace, in the way
 * cleanup finds wireguard-go daemons.
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { mkdir, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { stateDir } from "../core/paths.js";
import { VpnnsError } from "../core/errors.js";
import { logCommand } from "../core/log.js";
import { pathExists } from "../core/files.js";
import { formatCommand } from "../tools/exec.js";
import type { Profile } from "../profile/types.js";
import { FORWARDER_UID, forwarderSocket, logFile, publishDir, requestFile, statusFile, type PublishRequest, type PublishStatus } from "./files.js";
import { formatHostSide } from "./spec.js";

const SUPERVISOR_SCRIPT = fileURLToPath(new URL("../publish/supervisor.js", import.meta.url));
const FORWARDER_SCRIPT = fileURLToPath(new URL("../publish/forwarder.js", import.meta.url));
/** Milliseconds to wait for the supervisor to apply a request. */
const APPLY_TIMEOUT_MS = 15_000;
/** Milliseconds between SIGTERM and SIGKILL when a supervisor is stopped. */
const STOP_GRACE_MS = 3000;

/** Return the profile's publish folder under the current state folder. */
function folderOf(profile: string): string {
  return publishDir(stateDir(), profile);
}

/** Addresses inside the namespace a forwarder tries, in order: loopback first, then the tunnel addresses. */
export function forwardTargets(profile: Profile): string[] {
  const tunnel = profile.interface.addresses.map((cidr) => cidr.slice(0, cidr.lastIndexOf("/")));
  return ["127.0.0.1", "::1", ...tunnel.filter((address) => !address.includes(":")), ...tunnel.filter((address) => address.includes(":"))];
}

/**
 * Make the profile's published ports match its publish list: start the supervisor or signal it to
 * reread the list, and wait until it has. With an empty list, stop the supervisor. Throws a
 * VpnnsError that names each host port that could not be opened and why.
 */
export async function applyPublishing(profile: Profile): Promise<PublishStatus | undefined> {
  const entries = profile.publish ?? [];
  const folder = folderOf(profile.name);
  if (entries.length === 0) {
    // A supervisor ends by itself once its folder is gone, so without a folder there is nothing to stop.
    if (await pathExists(folder)) await stopPublishing(profile.name);
    return undefined;
  }
  await mkdir(folder, { recursive: true, mode: 0o700 });
  // node:crypto costs several milliseconds to load, which only profiles with a publish list pay.
  const { randomUUID } = await import("node:crypto");
  const request: PublishRequest = { generation: randomUUID(), entries, targets: forwardTargets(profile) };

  const running = await findSupervisors(profile.name);
  const current = await readPublishStatus(profile.name);
  if (running.length > 0 && current !== undefined && isApplied(current, request)) return current;
  await writeRequest(folder, request);
  if (running.length > 0) {
    for (const pid of running) process.kill(pid, "SIGHUP");
  } else {
    await startSupervisor(profile.name, folder);
  }
  const status = await waitForStatus(profile.name, request.generation);
  const failures = status.ports.filter((port) => !port.listening);
  if (failures.length > 0) {
    throw new VpnnsError(failures.map((port) => port.error ?? `failed to listen on ${formatHostSide(port)}`).join("; "));
  }
  return status;
}

/** Check whether the supervisor already publishes exactly these ports, all of them open, to these targets. */
function isApplied(status: PublishStatus, request: PublishRequest): boolean {
  if (status.ports.some((port) => !port.listening)) return false;
  const applied = status.ports.map(({ protocol, hostAddress, hostPort, namespacePort }) => ({ protocol, hostAddress, hostPort, namespacePort }));
  return JSON.stringify(applied) === JSON.stringify(request.entries) && JSON.stringify(status.targets) === JSON.stringify(request.targets);
}

async function writeRequest(folder: string, request: PublishRequest): Promise<void> {
  const temporary = `${requestFile(folder)}.${process.pid}`;
  await writeFile(temporary, JSON.stringify(request, null, 2) + "\n", { mode: 0o600 });
  await rename(temporary, requestFile(folder));
}

async function startSupervisor(profile: string, folder: string): Promise<void> {
  const argv = [process.execPath, SUPERVISOR_SCRIPT, "--profile", profile, "--state-dir", stateDir()];
  logCommand(formatCommand(argv));
  const log = await open(logFile(folder), "a", 0o600);
  try {
    // node:child_process instead of tools/exec.ts, because the supervisor must outlive this process:
    // it runs detached in its own session, and vpnns does not wait for it.
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ["ignore", "ignore", log.fd] });
    child.on("error", () => {});
    child.unref();
  } finally {
    await log.close();
  }
}

async function waitForStatus(profile: string, generation: string): Promise<PublishStatus> {
  const started = Date.now();
  for (;;) {
    const status = await readPublishStatus(profile);
    if (status?.generation === generation) return status;
    const elapsed = Date.now() - started;
    // A supervisor that is gone after a second has failed to start or crashed.
    if (elapsed > APPLY_TIMEOUT_MS || (elapsed > 1000 && (await findSupervisors(profile)).length === 0)) {
      const log = await readFile(logFile(folderOf(profile)), "utf8").catch(() => "");
      const lastLines = log.trim().split("\n").slice(-3).join(" | ");
      throw new VpnnsError(`the publish supervisor of profile ${profile} did not apply the published ports${lastLines ? `: ${lastLines}` : ""}; see ${logFile(folderOf(profile))}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Read what the supervisor last applied, or undefined when no supervisor wrote a status. */
export async function readPublishStatus(profile: string): Promise<PublishStatus | undefined> {
  try {
    return JSON.parse(await readFile(statusFile(folderOf(profile)), "utf8")) as PublishStatus;
  } catch {
    return undefined;
  }
}

interface PublishProcess {
  pid: number;
  kind: "supervisor" | "forwarder";
  profile: string;
}

/** Return the profile a supervisor's or forwarder's command line names under this state folder, if any. */
function profileOfCommand(argv: string[]): { kind: PublishProcess["kind"]; profile: string } | undefined {
  if (argv[1] === SUPERVISOR_SCRIPT) {
    const profile = argv[argv.indexOf("--profile") + 1];
    const folder = argv[argv.indexOf("--state-dir") + 1];
    return profile !== undefined && folder === stateDir() ? { kind: "supervisor", profile } : undefined;
  }
  if (argv[1] === FORWARDER_SCRIPT) {
    const socket = argv[argv.indexOf("--socket") + 1] ?? "";
    const profile = basename(dirname(dirname(socket)));
    return socket === forwarderSocket(folderOf(profile)) ? { kind: "forwarder", profile } : undefined;
  }
  return undefined;
}

/**
 * Find the supervisors and forwarders of this state folder. Supervisors count only in this network
 * namespace, where vpnns starts them, because another sandbox or container may share /proc.
 * Forwarders live in the profiles' namespaces and are known by their socket path.
 * The reads are synchronous, as in resources/namespace.ts: /proc serves its files from memory,
 * and an asynchronous read of each process's command line made this pass most of the time that
 * `down` spends between its commands.
 */
async function scanPublishProcesses(): Promise<PublishProcess[]> {
  const own = readlinkSync("/proc/self/ns/net");
  const found: PublishProcess[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const match = profileOfCommand(readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0"));
      if (match === undefined || !isRunning(Number(entry))) continue;
      if (!OWNER_UIDS[match.kind].includes(userOf(Number(entry)))) continue;
      if (match.kind === "supervisor" && readlinkSync(`/proc/${entry}/ns/net`) !== own) continue;
      found.push({ pid: Number(entry), ...match });
    } catch {
      // The process ended while it was read.
    }
  }
  return found;
}

/**
 * Real and effective user IDs that each kind of process runs as: vpnns starts supervisors as root,
 * and a forwarder is root until it has bound its socket and then 65534. Any user can start a
 * process with the same command line, so one of another user is not the profile's.
 */
const OWNER_UIDS: Record<PublishProcess["kind"], readonly number[]> = { supervisor: [0], forwarder: [0, FORWARDER_UID] };

/**
 * Return the process's user ID when its real and effective user IDs agree, else -1. The owner of
 * /proc/PID is no proof, because it is root for any process that made itself non-dumpable.
 */
function userOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const ids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
  return ids !== null && ids[1] === ids[2] ? Number(ids[1]) : -1;
}

/** Check whether a process exists and is not a zombie that no parent has reaped yet. */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** PIDs of the profile's supervisors under this state folder. */
export async function findSupervisors(profile: string): Promise<number[]> {
  return (await scanPublishProcesses()).filter((entry) => entry.kind === "supervisor" && entry.profile === profile).map((entry) => entry.pid);
}

/** PIDs of the profile's forwarders, found by the socket path on their command line. */
export async function findForwarders(profile: string): Promise<number[]> {
  return (await scanPublishProcesses()).filter((entry) => entry.kind === "forwarder" && entry.profile === profile).map((entry) => entry.pid);
}

/** Profiles under this state folder that have a publish supervisor running, for cleanup. */
export async function profilesWithSupervisors(): Promise<string[]> {
  const supervisors = (await scanPublishProcesses()).filter((entry) => entry.kind === "supervisor");
  return [...new Set(supervisors.map((entry) => entry.profile))].sort();
}

/**
 * Stop the profile's supervisors and forwarders (SIGTERM, then SIGKILL after 3 s) and remove the
 * publish folder. Returns whether anything was running. Safe to repeat.
 */
export async function stopPublishing(profile: string): Promise<boolean> {
  const processes = (await scanPublishProcesses()).filter((entry) => entry.profile === profile);
  const supervisors = processes.filter((entry) => entry.kind === "supervisor").map((entry) => entry.pid);
  for (const pid of supervisors) signal(pid, "SIGTERM");
  const deadline = Date.now() + STOP_GRACE_MS;
  let remaining = supervisors;
  while (remaining.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    remaining = await filterRunning(remaining);
  }
  for (const pid of remaining) signal(pid, "SIGKILL");
  // A supervisor killed with SIGKILL leaves its forwarder behind. It would end once its stdin closes,
  // but teardown deletes the namespace next and must not wait for that.
  const forwarders = processes.filter((entry) => entry.kind === "forwarder").map((entry) => entry.pid);
  for (const pid of await filterRunning(forwarders)) signal(pid, "SIGKILL");
  await rm(folderOf(profile), { recursive: true, force: true });
  return processes.length > 0;
}

async function filterRunning(pids: number[]): Promise<number[]> {
  const running = [];
  for (const pid of pids) if (isRunning(pid)) running.push(pid);
  return running;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}
