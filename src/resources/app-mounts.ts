/**
 * The mount namespace that apps of a profile run in. `ip netns exec` would give each app the
 * profile's resolv.conf and nsswitch.conf, but glibc asks nscd over /run/nscd/socket before it reads
 * nsswitch.conf, and systemd-resolved listens under /run/systemd/resolve: both answer from the host's
 * network. So `up` creates one mount namespace per profile, kept by a bind mount of its nsfs file,
 * where the DNS files are bound over /etc and those folders are covered by empty read-only folders.
 * `vpnns run` enters it with `nsenter --net --mount`, one exec like `ip netns exec`.
 *
 * The namespace is a slave of the host's, so mounts made on the host later (removable media, a
 * login's /run/user/UID) appear inside too. Before each launch, prepareAppMounts mounts again what
 * the host detached by replacing a file, and covers a resolver folder that appeared since `up`.
 */
import { lstat, mkdir, readFile, readlink, realpath, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { netnsEtcDir, netnsRunFile, profileStateDir } from "../core/paths.js";
import { profileOfNamespace } from "../core/names.js";
import { warn } from "../core/log.js";
import { formatCommand, run } from "../tools/exec.js";
import { CommandError } from "../core/errors.js";

/** Folders of host resolvers that apps inside must not reach, each covered once it exists. */
export const HIDDEN_RESOLVER_FOLDERS = ["/run/nscd", "/run/systemd/resolve"];
/**
 * Files in /run/systemd/resolve that /etc/resolv.conf may link to. The cover folder has empty files
 * of these names, so the bind of the profile's resolv.conf over /etc/resolv.conf still finds its target.
 */
const RESOLVED_FILES = ["stub-resolv.conf", "resolv.conf"];

/** Return the folder of a profile's mount namespace file, its fstab and the cover folders. */
export function appMountsDir(profile: string): string {
  return join(profileStateDir(profile), "mounts");
}

/** Return the nsfs file that keeps the profile's mount namespace, which `nsenter --mount` enters. */
export function mountNamespaceFile(profile: string): string {
  return join(appMountsDir(profile), "mnt");
}

/** Escape a path for an fstab field: spaces, tabs, newlines and backslashes as octal escapes (fstab(5)). */
export function escapeFstabField(path: string): string {
  return path.replace(/[ \t\n\\]/g, (character) => `\\${character.charCodeAt(0).toString(8).padStart(3, "0")}`);
}

export interface AppMountEntry {
  source: string;
  target: string;
  type: string;
  options: string;
}

/**
 * Plan the mounts inside the namespace, in order: the profile's sysfs, the cover folders, then the DNS
 * files, which may land inside a cover folder when /etc/resolv.conf links to systemd-resolved's file.
 */
export function planAppMounts(profile: string, options: { hiddenFolders: string[]; bindResolvConf: boolean }): AppMountEntry[] {
  const etc = netnsEtcDir(profile);
  const entries: AppMountEntry[] = [
    // The namespace's own sysfs, as `ip netns exec` mounts it, so /sys/class/net lists its links.
    { source: `vpnns-${profile}`, target: "/sys", type: "sysfs", options: "defaults" },
  ];
  for (const folder of options.hiddenFolders) {
    entries.push({ source: coverFolder(profile, folder), target: folder, type: "none", options: "bind,ro" });
  }
  if (options.bindResolvConf) entries.push({ source: join(etc, "resolv.conf"), target: "/etc/resolv.conf", type: "none", options: "bind" });
  entries.push({ source: join(etc, "nsswitch.conf"), target: "/etc/nsswitch.conf", type: "none", options: "bind" });
  return entries;
}

export function renderFstab(entries: AppMountEntry[]): string {
  return entries.map((entry) => `${escapeFstabField(entry.source)} ${escapeFstabField(entry.target)} ${entry.type} ${entry.options} 0 0\n`).join("");
}

function coverFolder(profile: string, folder: string): string {
  return join(appMountsDir(profile), `cover${folder.replaceAll("/", "-")}`);
}

async function isFolder(path: string): Promise<boolean> {
  return stat(path).then(
    (info) => info.isDirectory(),
    () => false,
  );
}

/**
 * Check that /etc/resolv.conf leads to a file once the cover folders are mounted: it may link into
 * /run/systemd/resolve, whose cover has files of the same names, or elsewhere to a file that exists.
 */
async function resolvConfHasTarget(hiddenFolders: string[]): Promise<boolean> {
  if (await realpath("/etc/resolv.conf").then(() => true, () => false)) return true;
  const info = await lstat("/etc/resolv.conf").catch(() => undefined);
  if (!info?.isSymbolicLink()) return false;
  const target = resolve(dirname("/etc/resolv.conf"), await readlink("/etc/resolv.conf"));
  return hiddenFolders.includes(dirname(target)) && RESOLVED_FILES.includes(target.slice(dirname(target).length + 1));
}

/** Return the file that records the host's DNS files and resolver folders as the mounts last saw them. */
function hostRecordFile(profile: string): string {
  return join(appMountsDir(profile), "host.json");
}

/** Paths whose replacement on the host detaches a mount inside, or whose appearance needs a new cover. */
const WATCHED_PATHS = ["/etc/resolv.conf", "/etc/nsswitch.conf", ...HIDDEN_RESOLVER_FOLDERS];

/**
 * Identify each watched path by device and inode, of the link and of its target. A host tool that
 * replaces /etc/resolv.conf by a rename gives it a new inode, and the kernel then detaches the
 * bind mount on the old one in every mount namespace.
 */
async function fingerprintHost(): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const path of WATCHED_PATHS) {
    const link = await lstat(path).catch(() => undefined);
    const target = await stat(path).catch(() => undefined);
    result[path] = `${link ? `${link.dev}:${link.ino}` : "missing"} ${target ? `${target.dev}:${target.ino}` : "missing"}`;
  }
  return result;
}

/**
 * Create the profile's mount namespace: a private bind mount of the mounts folder (the kernel keeps a
 * mount namespace in a file only on a mount that does not propagate), then `unshare --mount=FILE`,
 * which runs the mounts of planAppMounts inside the new namespace in the same process tree.
 */
export async function createAppMounts(profile: string): Promise<void> {
  const folder = appMountsDir(profile);
  const file = mountNamespaceFile(profile);
  await mkdir(folder, { recursive: true, mode: 0o700 });
  await writeFile(file, "", { mode: 0o600 });
  // mount applies --make-private to the new bind mount once the bind has succeeded.
  await run(["mount", "--bind", "--make-private", folder, folder], { intent: `bind-mount ${folder} onto itself as a private mount`, mutates: true });
  const mounts = await prepareMounts(profile);
  await createPersistentMountNamespace(profile, file, mountAllCommand(profile, mounts.fstab));
  await writeFile(hostRecordFile(profile), mounts.hostRecord, { mode: 0o600 });
}

/** Attempts of `unshare --mount=FILE` before `up` fails; see createPersistentMountNamespace. */
const MOUNT_NAMESPACE_ATTEMPTS = 20;

/** The line that unshare prints when the kernel refuses the bind of the new namespace to its file. */
const REJECTED_BIND = /^unshare: .*Invalid argument/m;

/**
 * Create a mount namespace that is a slave of this one, bind it to `file` and run `inside` in it.
 * unshare runs pinned to one CPU, the next allowed one on each attempt, and an attempt whose bind
 * fails with EINVAL is repeated with a new namespace. Nothing keeps the namespace of a failed
 * attempt, so the kernel frees it with its mounts once unshare has exited.
 * NOTE: on Linux 6.18 in the test sandbox and the demo, the bind failed with EINVAL on every
 * attempt of some runs when pinned to CPU 0, and cycling through the CPUs made 8 of 8 demo runs
 * pass. The suspect, not established, is the kernel's check against mount namespace loops, which
 * compares namespace ids that may not grow in order across CPUs.
 */
async function createPersistentMountNamespace(profile: string, file: string, inside: string[]): Promise<void> {
  const cpus = await allowedCpus();
  const intent = `create the mount namespace of profile ${profile}, with the DNS files mounted and the host's resolver folders covered`;
  for (let attempt = 1; ; attempt++) {
    // Each attempt runs on the next allowed CPU, because on one CPU every attempt of a run may fail.
    const cpu = cpus[(attempt - 1) % cpus.length] ?? "0";
    const argv = ["taskset", "--cpu-list", cpu, "unshare", `--mount=${file}`, "--propagation", "slave", ...inside];
    const result = await run(argv, { intent, mutates: true, allowFailure: attempt < MOUNT_NAMESPACE_ATTEMPTS });
    if (!result.failed) return;
    if (!REJECTED_BIND.test(result.stderr)) {
      throw new CommandError({ intent, command: formatCommand(argv), exitCode: result.exitCode, stderr: result.stderr });
    }
  }
}

/** Return the CPUs this process may run on, from Cpus_allowed_list in /proc/self/status. */
async function allowedCpus(): Promise<string[]> {
  const status = await readFile("/proc/self/status", "utf8");
  const list = /^Cpus_allowed_list:\s*([\d,-]+)/m.exec(status)?.[1] ?? "0";
  const cpus: string[] = [];
  for (const range of list.split(",")) {
    const [first = 0, last = first] = range.split("-").map(Number);
    for (let cpu = first; cpu <= last; cpu++) cpus.push(String(cpu));
  }
  return cpus;
}

/**
 * The command that mounts the DNS files and the covers with one `mount --all`, which skips what is
 * still mounted. It enters the profile's network namespace first, because a sysfs shows the
 * links of the network namespace of the process that mounts it, and the mount namespace of
 * `mountFile` when one is given.
 */
function mountAllCommand(profile: string, fstab: string, mountFile?: string): string[] {
  const enterMounts = mountFile === undefined ? [] : [`--mount=${mountFile}`];
  return ["nsenter", `--net=${netnsRunFile(profile)}`, ...enterMounts, "--", "mount", "--all", "--fstab", fstab];
}

/**
 * Make the cover folders and write the fstab of planAppMounts. Returns the fstab's path and the
 * host's paths as they are now, to be recorded once the mounts are made.
 */
async function prepareMounts(profile: string): Promise<{ fstab: string; hostRecord: string }> {
  const host = await fingerprintHost();
  const hiddenFolders: string[] = [];
  for (const hidden of HIDDEN_RESOLVER_FOLDERS) {
    if (!(await isFolder(hidden))) continue;
    hiddenFolders.push(hidden);
    const cover = coverFolder(profile, hidden);
    await mkdir(cover, { recursive: true, mode: 0o755 });
    if (hidden === "/run/systemd/resolve") for (const name of RESOLVED_FILES) await writeFile(join(cover, name), "", { mode: 0o644 });
  }
  const bindResolvConf = await resolvConfHasTarget(hiddenFolders);
  if (!bindResolvConf) {
    warn(`/etc/resolv.conf leads to no file on this machine, so apps in profile ${profile} read no resolv.conf and resolve only names in /etc/hosts`);
  }
  const fstab = join(appMountsDir(profile), "fstab");
  await writeFile(fstab, renderFstab(planAppMounts(profile, { hiddenFolders, bindResolvConf })), { mode: 0o600 });
  return { fstab, hostRecord: JSON.stringify(host) + "\n" };
}

/** Mount again in the profile's existing mount namespace what the host detached or added, and record the host's paths. */
async function mountInside(profile: string): Promise<void> {
  const mounts = await prepareMounts(profile);
  await run(mountAllCommand(profile, mounts.fstab, mountNamespaceFile(profile)), {
    intent: `mount the DNS files and cover the host's resolver folders in the mount namespace of profile ${profile}`,
    mutates: true,
  });
  await writeFile(hostRecordFile(profile), mounts.hostRecord, { mode: 0o600 });
}

/**
 * Return the profile's mount namespace file for a launch, after mounting again what the host
 * detached or added since the last launch (a replaced /etc/resolv.conf, a resolver folder that
 * appeared). Returns undefined when the profile has no mount namespace, as when an older vpnns
 * brought it up. Costs a few stat calls, and one `mount --all` only after such a change.
 */
export async function prepareAppMounts(namespace: string): Promise<string | undefined> {
  const profile = profileOfNamespace(namespace);
  if (profile === undefined) return undefined;
  const file = mountNamespaceFile(profile);
  if ((await mountsBelow(file)).length === 0) return undefined;
  const recorded = await readFile(hostRecordFile(profile), "utf8").catch(() => "");
  if (recorded !== JSON.stringify(await fingerprintHost()) + "\n") await mountInside(profile);
  return file;
}

/** Decode the octal escapes of a /proc/self/mountinfo field. */
function decodeMountInfoField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Mount points at or below a folder in this mount namespace, deepest and latest first. */
async function mountsBelow(folder: string): Promise<string[]> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  const points = info
    .split("\n")
    .map((line) => decodeMountInfoField(line.split(" ")[4] ?? ""))
    .filter((point) => point === folder || point.startsWith(`${folder}/`));
  return points.reverse();
}

/**
 * Remove the profile's mount namespace file and the bind mount of its folder, found in mountinfo, so
 * this also cleans what a crashed `up` left. The namespace itself ends with its last process.
 */
export async function removeAppMounts(profile: string): Promise<void> {
  const points = await mountsBelow(appMountsDir(profile));
  if (points.length === 0) return;
  // umount takes the points in the order given, deepest first, and fails when any of them fails.
  await run(["umount", ...points], { intent: `unmount ${points.join(" and ")}`, mutates: true });
}

/** Return the prefix that runs a program in the profile's network and mount namespaces, in the given folder. */
export function enterProfile(namespace: string, mountFile: string, workingFolder: string): string[] {
  return ["nsenter", `--net=${join("/run/netns", namespace)}`, `--mount=${mountFile}`, `--wdns=${workingFolder}`, "--"];
}
