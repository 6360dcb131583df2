/**
 * Finding and stopping processes by network namespace, read from /proc. The lab and the sandbox
 * use it to stop wireguard-go daemons, which detach from their parent and so cannot be waited for.
 */
import { readdir, readFile, readlink, stat } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";

/** A running process and the network namespace it is in. */
export interface ProcessEntry {
  pid: number;
  /** The kernel's short command name from /proc/PID/comm, such as "wireguard-go". */
  name: string;
  /** Identity of the process's network namespace, comparable with namespaceKey(). */
  namespace: string;
}

const POLL_INTERVAL_MS = 50;

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ESRCH";
}

/**
 * Returns the inode number that identifies the namespace behind a namespace file, or undefined
 * when the file does not exist. The file is a /proc/PID/ns/* link, which reads as "net:[INODE]",
 * or a bind mount of one, such as /run/netns/NAME, whose own inode is the namespace's. All
 * namespaces live on the one nsfs file system, so the inode alone tells them apart.
 */
export async function namespaceKey(path: string): Promise<string | undefined> {
  try {
    const match = /^\w+:\[(\d+)\]$/.exec(await readlink(path));
    if (match) return match[1];
  } catch (error) {
    if (isMissing(error)) return undefined;
    // EINVAL: not a symbolic link, so a bind mount.
    if ((error as NodeJS.ErrnoException).code !== "EINVAL") throw error;
  }
  try {
    return String((await stat(path, { bigint: true })).ino);
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

/**
 * Lists every process with its network namespace, skipping processes that exit during the scan and
 * those this process may not inspect.
 */
export async function listProcesses(): Promise<ProcessEntry[]> {
  const entries: ProcessEntry[] = [];
  for (const file of await readdir("/proc")) {
    if (!/^\d+$/.test(file)) continue;
    try {
      const namespace = await namespaceKey(`/proc/${file}/ns/net`);
      if (namespace === undefined) continue;
      const name = (await readFile(`/proc/${file}/comm`, "utf8")).trimEnd();
      entries.push({ pid: Number(file), name, namespace });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (isMissing(error) || code === "EACCES" || code === "EPERM") continue;
      throw error;
    }
  }
  return entries;
}

/** Lists the processes whose network namespace is one of the given keys. */
export async function listProcessesInNamespaces(namespaces: ReadonlySet<string>): Promise<ProcessEntry[]> {
  return (await listProcesses()).filter((entry) => namespaces.has(entry.namespace));
}

/** Reads the process state letter from /proc/PID/stat ("Z" for a zombie), or undefined once the process is gone. */
async function processState(pid: number): Promise<string | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, "utf8");
    // The command name in brackets may contain spaces and ")", so the state follows the last ")".
    return text.slice(text.lastIndexOf(")") + 2, text.lastIndexOf(")") + 3);
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

function sendSignal(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if (!isMissing(error)) throw error;
  }
}

/**
 * Waits until every process has exited, and returns the pids still running after timeoutMs. A
 * zombie counts as exited, because it has no namespace or socket left, only a pid for its parent to reap.
 */
async function waitForExit(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let running = [...pids];
  for (;;) {
    const states = await Promise.all(running.map(async (pid) => [pid, await processState(pid)] as const));
    running = states.filter(([, state]) => state !== undefined && state !== "Z").map(([pid]) => pid);
    if (running.length === 0 || Date.now() >= deadline) return running;
    await delay(POLL_INTERVAL_MS);
  }
}

/**
 * Stops processes with SIGTERM, then SIGKILL for those still running after graceMs, and waits
 * until they have exited. Returns the pids that needed SIGKILL.
 */
export async function terminateProcesses(pids: readonly number[], graceMs = 5000): Promise<number[]> {
  if (pids.length === 0) return [];
  for (const pid of pids) sendSignal(pid, "SIGTERM");
  const stubborn = await waitForExit(pids, graceMs);
  if (stubborn.length === 0) return [];

  for (const pid of stubborn) sendSignal(pid, "SIGKILL");
  const survivors = await waitForExit(stubborn, graceMs);
  if (survivors.length > 0) {
    throw new Error(`failed to stop processes ${survivors.join(", ")}: still running after SIGKILL`);
  }
  return stubborn;
}
