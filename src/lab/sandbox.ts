/**
 * A private sandbox for tests and the demo: a fresh network namespace and a private mount namespace
 * in which /etc, /run/netns, /run/vpnns and /run/wireguard are writable without touching the
 * machine's files. Namespaces, links, firewall rules and files made inside vanish with it, but
 * processes do not: daemons such as wireguard-go must be stopped before the sandbox exits.
 */
import { mkdir, readFile, realpath } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { VpnnsError } from "../core/errors.js";
import { run } from "../tools/exec.js";
import { namespaceKey } from "./processes.js";

/** The command that starts a process in a new private mount and network namespace. */
export const SANDBOX_COMMAND_PREFIX: readonly string[] = [
  "unshare", "--mount", "--net", "--propagation", "private", "--fork", "--kill-child", "--",
];

/** Set to "1" in the environment of commands that sandbox-run starts. */
export const SANDBOX_ENV = "VPNNS_SANDBOX";

/** Wraps a command so that it runs in new namespaces. The command must call prepareSandbox() first. */
export function sandboxArgv(argv: readonly string[]): string[] {
  return [...SANDBOX_COMMAND_PREFIX, ...argv];
}

/** Wraps a command so that sandbox-run prepares the sandbox, runs the command and cleans up after it. */
export function sandboxRunArgv(argv: readonly string[]): string[] {
  const script = fileURLToPath(new URL("../lab/sandbox-run.js", import.meta.url));
  return sandboxArgv([process.execPath, script, ...argv]);
}

/** Directories that get an empty tmpfs each: namespace files, vpnns state and wireguard-go sockets. */
const PRIVATE_RUN_DIRS = ["/run/netns", "/run/vpnns", "/run/wireguard"];
/**
 * Mount point of a tmpfs for the overlay upper and work directories. The tmpfs is unmounted right
 * after the overlays are mounted, and they keep using it, because overlayfs keeps its own reference.
 */
const STAGING_DIR = "/tmp";

/** Reads the parent pid from /proc/PID/stat, or returns undefined once the process is gone. */
export async function parentPid(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // The command name in brackets may contain spaces, so the fields are counted from the last ")".
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

/**
 * Throws unless this process's network and mount namespaces differ from those of one of its
 * ancestors, as they do below `unshare --mount --net`, so that nothing the sandbox or the lab does
 * reaches the machine. Ancestors are compared because the machine's own namespaces cannot always be
 * read: in a container, even root may get EACCES on /proc/1/ns.
 */
export async function assertPrivateNamespaces(): Promise<void> {
  const remaining = new Set(["net", "mnt"]);
  const own = new Map<string, string | undefined>();
  for (const kind of remaining) own.set(kind, await namespaceKey(`/proc/self/ns/${kind}`));

  let pid = await parentPid(process.pid);
  while (pid !== undefined && pid > 1 && remaining.size > 0) {
    for (const kind of [...remaining]) {
      const ancestor = await namespaceKey(`/proc/${pid}/ns/${kind}`).catch(() => undefined);
      if (ancestor !== undefined && ancestor !== own.get(kind)) remaining.delete(kind);
    }
    pid = await parentPid(pid);
  }
  if (remaining.size > 0) {
    throw new VpnnsError(
      `cannot run outside a sandbox: this process shares its ${[...remaining].join(" and ")} ` +
        `namespace${remaining.size > 1 ? "s" : ""} with all its ancestors, ` +
        `so it may be the machine's own; start it with: ${SANDBOX_COMMAND_PREFIX.join(" ")} COMMAND`,
    );
  }
}

/** Throws if any mount propagates to other namespaces, since a mount made below it would reach the machine. */
async function assertPrivateMounts(): Promise<void> {
  const mountInfo = await readFile("/proc/self/mountinfo", "utf8");
  for (const line of mountInfo.split("\n")) {
    const fields = line.split(" ");
    // Optional fields (such as "shared:N") sit between the mount options and the "-" separator.
    const optional = fields.slice(6, fields.indexOf("-"));
    if (optional.some((field) => field.startsWith("shared:"))) {
      throw new VpnnsError(
        `cannot prepare the sandbox: mount ${fields[4]} is shared with other mount namespaces; start with unshare --propagation private`,
      );
    }
  }
}

/** Throws unless the network namespace has only a loopback interface, as a new one does. */
async function assertFreshNetwork(): Promise<void> {
  const { stdout } = await run(["ip", "-o", "link", "show"], { intent: "list links" });
  const names = stdout
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => line.split(":")[1]?.trim());
  if (names.length !== 1 || names[0] !== "lo") {
    throw new VpnnsError(`cannot prepare the sandbox: the network namespace is not new, it has links ${names.join(", ")}`);
  }
}

/** Throws unless /var/run resolves to /run, where the sandbox's private /run/wireguard is. */
async function assertVarRunIsRun(): Promise<void> {
  const resolved = await realpath("/var/run");
  if (resolved !== "/run") {
    throw new VpnnsError(
      `cannot prepare the sandbox: /var/run resolves to ${resolved}, not /run, so wireguard-go sockets would land outside the sandbox's private /run/wireguard`,
    );
  }
}

async function mountTmpfs(target: string, source: string): Promise<void> {
  await mkdir(target, { recursive: true });
  await run(["mount", "-t", "tmpfs", "-o", "mode=0755", source, target], { intent: `mount a tmpfs on ${target}`, mutates: true });
}

/** Mounts an overlay on directory, so writes go to a tmpfs and the directory below stays unchanged. */
async function mountOverlay(directory: string, upper: string, work: string): Promise<void> {
  await mkdir(upper, { recursive: true });
  await mkdir(work, { recursive: true });
  await run(
    ["mount", "-t", "overlay", "overlay", "-o", `lowerdir=${directory},upperdir=${upper},workdir=${work}`, directory],
    { intent: `mount an overlay on ${directory}`, mutates: true },
  );
}

/**
 * Prepares the sandbox. The calling process must already run in a new mount and network namespace
 * with private propagation (see SANDBOX_COMMAND_PREFIX).
 *
 * It brings up loopback and mounts overlays on /etc and /run, whose writes go to a private tmpfs,
 * so /etc/netns and the folders below /run can be created without changing the machine's files.
 * Then it mounts an empty tmpfs on each of /run/netns, /run/vpnns and /run/wireguard. `ip netns add`
 * marks /run/netns shared, which stays inside this mount namespace. wireguard-go and wg use
 * /var/run/wireguard, so /var/run must link to /run. Mounts below /run, such as /run/user/UID,
 * are hidden in the sandbox, because the overlay shows only the /run file system itself.
 */
export async function prepareSandbox(): Promise<void> {
  await assertPrivateNamespaces();
  await assertPrivateMounts();
  await assertFreshNetwork();
  await assertVarRunIsRun();

  await run(["ip", "link", "set", "lo", "up"], { intent: "bring up loopback", mutates: true });

  // While the staging tmpfs covers /tmp, a working folder under /tmp (a clone there, say) does not
  // resolve, and every command started from it would fail: so work from / until it is unmounted.
  const workingFolder = process.cwd();
  process.chdir("/");
  try {
    await run(["mount", "-t", "tmpfs", "-o", "mode=0700", "vpnns-sandbox", STAGING_DIR], {
      intent: `mount the sandbox's staging tmpfs on ${STAGING_DIR}`,
      mutates: true,
    });
    await mountOverlay("/etc", `${STAGING_DIR}/etc/upper`, `${STAGING_DIR}/etc/work`);
    await mountOverlay("/run", `${STAGING_DIR}/run/upper`, `${STAGING_DIR}/run/work`);
    await run(["umount", STAGING_DIR], { intent: `unmount the staging tmpfs from ${STAGING_DIR}`, mutates: true });
  } finally {
    process.chdir(workingFolder);
  }

  await mkdir("/etc/netns", { recursive: true });
  for (const directory of PRIVATE_RUN_DIRS) await mountTmpfs(directory, `vpnns-sandbox-${directory.split("/").pop()}`);
}
