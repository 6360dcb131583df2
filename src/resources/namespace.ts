/** The profile's network namespace and the processes inside it. */
import { readdir, readFile, readlink, stat } from "node:fs/promises";
import { join } from "node:path";
import { addNamespace, batch, deleteNamespace, listNamespaces } from "../tools/ip.js";

export async function namespaceExists(namespace: string): Promise<boolean> {
  return (await listNamespaces()).includes(namespace);
}

/** Create the namespace and bring its loopback up. */
export async function createNamespace(namespace: string): Promise<void> {
  await addNamespace(namespace);
  await batch([["link", "set", "dev", "lo", "up"]], { namespace, intent: `bring up loopback in ${namespace}` });
}

export async function removeNamespace(namespace: string): Promise<void> {
  if (await namespaceExists(namespace)) await deleteNamespace(namespace);
}

/** A process whose network namespace is the profile's. */
export interface ProcessInfo {
  pid: number;
  command: string;
  uid: number;
}

/** Return the "net:[inode]" link that every process in the namespace has as /proc/PID/ns/net. */
async function namespaceLink(namespace: string): Promise<string | undefined> {
  try {
    const { ino } = await stat(join("/run/netns", namespace));
    return `net:[${ino}]`;
  } catch {
    return undefined;
  }
}

/** List the processes inside a namespace by comparing every process's network namespace link. */
export async function processesInside(namespace: string): Promise<ProcessInfo[]> {
  const link = await namespaceLink(namespace);
  if (link === undefined) return [];
  const found: ProcessInfo[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if ((await readlink(`/proc/${entry}/ns/net`)) !== link) continue;
      const status = await readFile(`/proc/${entry}/status`, "utf8");
      const command = /^Name:\s*(.*)$/m.exec(status)?.[1] ?? "?";
      const uid = Number(/^Uid:\s*(\d+)/m.exec(status)?.[1] ?? -1);
      found.push({ pid: Number(entry), command, uid });
    } catch {
      // The process ended while it was read.
    }
  }
  return found;
}

/**
 * Wait until the process has joined the namespace or has ended, by reading /proc/PID/ns/net.
 * Returns false when neither happened within timeoutMs.
 */
export async function waitUntilInside(pid: number, namespace: string, timeoutMs: number): Promise<boolean> {
  const link = await namespaceLink(namespace);
  if (link === undefined) return true;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let current: string;
    try {
      current = await readlink(`/proc/${pid}/ns/net`);
    } catch {
      // Ended: /proc hides the namespace of a process that has exited, also while it is a zombie.
      return true;
    }
    if (current === link) return true;
    if (Date.now() > deadline) return false;
    await sleep(5);
  }
}

/**
 * End every process inside: SIGTERM, then SIGKILL for those still there after the grace period.
 * Returns the number of processes that were ended.
 * NOTE: a process that left for a namespace of its own (`unshare -r -n` as any user, where
 * unprivileged user namespaces are allowed) is not found, so it outlives `down`, and a run
 * whose app it is keeps waiting for it. It has no uplink there.
 */
export async function endProcessesInside(namespace: string, graceMs: number): Promise<number> {
  const initial = await processesInside(namespace);
  if (initial.length === 0) return 0;
  signalAll(initial, "SIGTERM");

  const deadline = Date.now() + graceMs;
  let remaining = initial;
  while (remaining.length > 0 && Date.now() < deadline) {
    await sleep(50);
    remaining = await processesInside(namespace);
  }
  signalAll(remaining, "SIGKILL");
  while ((await processesInside(namespace)).length > 0 && Date.now() < deadline + 2000) await sleep(20);
  return initial.length;
}

function signalAll(processes: ProcessInfo[], signal: NodeJS.Signals): void {
  for (const { pid } of processes) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Return the undo of createNamespace: deleting the namespace, which also removes its links and firewall. */
export function createNamespaceUndo(namespace: string): () => Promise<void> {
  return () => removeNamespace(namespace);
}
