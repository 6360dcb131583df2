/**
 * The WireGuard interface. It is created in the host namespace, so its UDP socket stays there, and
 * configured there, so endpoint host names resolve with the host's DNS; then it moves into the
 * profile's namespace. Kernel WireGuard and wireguard-go differ only in how the link is created.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { WireGuardConfig } from "../profile/types.js";
import { formatCommand, run, type RunOptions } from "../tools/exec.js";
import { CommandError } from "../core/errors.js";
import { stateDir } from "../core/paths.js";
import { sleep } from "./namespace.js";

export type WireGuardBackend = "kernel" | "wireguard-go";
export type WireGuardBackendSetting = "auto" | WireGuardBackend;

/** One external command that a plan runs, with what it is for. */
export interface PlannedCommand {
  argv: string[];
  options: RunOptions;
  /** A file written with mode 0600 just before the command runs and removed right after it. */
  secretFile?: { path: string; content: string };
}

/** wireguard-go on Linux declines to start without this variable, because a kernel module may exist. */
const USERSPACE_ENV = { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1" };

/** Folder of wireguard-go's control sockets, which `wg` finds from any network namespace. */
export const USERSPACE_SOCKET_DIR = "/var/run/wireguard";

/** Plan the command that creates the link in the host namespace. */
export function planCreateLink(backend: WireGuardBackend, interfaceName: string): PlannedCommand {
  const intent = `create WireGuard interface ${interfaceName} (${backend})`;
  if (backend === "kernel") {
    return { argv: ["ip", "link", "add", "dev", interfaceName, "type", "wireguard"], options: { intent, mutates: true } };
  }
  return { argv: ["wireguard-go", interfaceName], options: { intent, mutates: true, env: USERSPACE_ENV } };
}

/** Plan the move of the configured link into the profile's namespace. */
export function planMoveLink(interfaceName: string, namespace: string): PlannedCommand {
  return {
    argv: ["ip", "link", "set", "dev", interfaceName, "netns", namespace],
    options: { intent: `move ${interfaceName} into ${namespace}`, mutates: true },
  };
}

/** Stderr of `ip link add ... type wireguard` on a kernel without the module. */
const NO_KERNEL_SUPPORT = /Unknown device type|not supported|Operation not supported|No such device/i;

/**
 * Marker of a failed attempt at kernel WireGuard. It lives in the state folder, a tmpfs that a
 * reboot empties, so each boot tries the kernel once.
 */
function noKernelMarker(): string {
  return join(stateDir(), "no-kernel-wireguard");
}

/** /sys/module/wireguard exists once the module is loaded, so a marker is then out of date. */
const KERNEL_MODULE_DIR = "/sys/module/wireguard";

/**
 * Create the link with the chosen backend. With "auto", kernel WireGuard is tried first, as
 * wg-quick does, and wireguard-go is used when the kernel has no WireGuard. After one failed
 * attempt, later setups of the same boot start wireguard-go at once, until the module is loaded.
 */
export async function createLink(setting: WireGuardBackendSetting, interfaceName: string): Promise<WireGuardBackend> {
  if (setting !== "auto") {
    const planned = planCreateLink(setting, interfaceName);
    await run(planned.argv, planned.options);
    return setting;
  }
  if (existsSync(noKernelMarker()) && !existsSync(KERNEL_MODULE_DIR)) {
    const userspace = planCreateLink("wireguard-go", interfaceName);
    await run(userspace.argv, userspace.options);
    return "wireguard-go";
  }
  const kernel = planCreateLink("kernel", interfaceName);
  const attempt = await run(kernel.argv, { ...kernel.options, allowFailure: true });
  if (!attempt.failed) return "kernel";
  if (!NO_KERNEL_SUPPORT.test(attempt.stderr)) {
    // A real failure, such as a name clash, is reported as it happened. Running the command again
    // could report another error, or create the link and then clash with wireguard-go.
    throw new CommandError({ intent: kernel.options.intent, command: formatCommand(kernel.argv), exitCode: attempt.exitCode, stderr: attempt.stderr });
  }
  await mkdir(stateDir(), { recursive: true, mode: 0o700 });
  await writeFile(noKernelMarker(), `${attempt.stderr.trim()}\n`, { mode: 0o600 });
  const userspace = planCreateLink("wireguard-go", interfaceName);
  await run(userspace.argv, userspace.options);
  return "wireguard-go";
}

/** Render the `wg setconf` input: everything wg needs, secrets included (plan.ts passes it in a 0600 file). */
export function renderWgConfig(config: WireGuardConfig): string {
  const lines = ["[Interface]", `PrivateKey = ${config.interface.privateKey}`];
  if (config.interface.listenPort !== undefined) lines.push(`ListenPort = ${config.interface.listenPort}`);
  for (const peer of config.peers) {
    lines.push("", "[Peer]", `PublicKey = ${peer.publicKey}`);
    if (peer.presharedKey !== undefined) lines.push(`PresharedKey = ${peer.presharedKey}`);
    lines.push(`AllowedIPs = ${peer.allowedIPs.join(", ")}`);
    if (peer.endpoint !== undefined) lines.push(`Endpoint = ${peer.endpoint}`);
    if (peer.persistentKeepalive !== undefined) lines.push(`PersistentKeepalive = ${peer.persistentKeepalive}`);
  }
  return lines.join("\n") + "\n";
}

/** List the private key and the preshared keys of a configuration. */
export function secretsOf(config: WireGuardConfig): string[] {
  const presharedKeys = config.peers.flatMap((peer) => (peer.presharedKey === undefined ? [] : [peer.presharedKey]));
  return [config.interface.privateKey, ...presharedKeys];
}

/**
 * PIDs of the wireguard-go daemons that serve this interface name. vpnns starts them in its own
 * network namespace, so daemons of the same name elsewhere (a container or another sandbox that
 * shares the PID namespace) belong to another network stack and are not returned. The scan reads
 * /proc synchronously, which is about ten times faster than a read per file through promises.
 */
export async function findUserspaceDaemons(interfaceName: string): Promise<number[]> {
  const ownNamespace = readlinkSync("/proc/self/ns/net");
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => isUserspaceDaemon(pid, interfaceName, ownNamespace));
}

/**
 * Check that a process is a wireguard-go daemon of the interface in vpnns's own network namespace,
 * as findUserspaceDaemons counts them. Returns false for a process that has ended and for a zombie.
 */
export function isUserspaceDaemon(pid: number, interfaceName: string, ownNamespace = readlinkSync("/proc/self/ns/net")): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    const program = argv[0]?.split("/").pop();
    if (program !== "wireguard-go" || !argv.slice(1).includes(interfaceName)) return false;
    return readlinkSync(`/proc/${pid}/ns/net`) === ownNamespace;
  } catch {
    // The process ended while it was read.
    return false;
  }
}

/**
 * Find the daemons of an interface: the recorded pid alone when it is still that daemon, else
 * the result of a scan of /proc. A second daemon of the same name cannot run beside it, because
 * the two would need the same interface and control socket.
 */
export async function userspaceDaemonsOf(interfaceName: string, recordedPid: number | undefined): Promise<number[]> {
  if (recordedPid !== undefined && isUserspaceDaemon(recordedPid, interfaceName)) return [recordedPid];
  return findUserspaceDaemons(interfaceName);
}

/**
 * Stop the wireguard-go daemons of an interface (SIGTERM, then SIGKILL after 2 s each), and
 * remove a stale socket. The SIGTERM goes out before this function first waits, so a caller may
 * do other work before it awaits the result. `pids` defaults to a scan of /proc.
 */
export async function stopUserspaceDaemons(interfaceName: string, pids?: number[]): Promise<void> {
  let remaining = pids ?? (await findUserspaceDaemons(interfaceName));
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    for (const pid of remaining) {
      try {
        process.kill(pid, signal);
      } catch {
        // Already gone.
      }
    }
    const deadline = Date.now() + 2000;
    let delay = 1;
    for (;;) {
      remaining = remaining.filter((pid) => isUserspaceDaemon(pid, interfaceName));
      if (remaining.length === 0 || Date.now() >= deadline) break;
      // A daemon that is not this process's child gives no event on exit, so its /proc entry is
      // checked: each check is one small read, and the pauses grow from 1 ms to 25 ms.
      await sleep(delay);
      delay = Math.min(delay * 2, 25);
    }
    if (remaining.length === 0) break;
  }
  await rm(join(USERSPACE_SOCKET_DIR, `${interfaceName}.sock`), { force: true });
}
