/**
 * Apps that pass a new launch to an instance already running and exit: Firefox, Chromium-based
 * browsers, qBittorrent and many Electron apps. Started in a profile while an instance runs
 * outside it, such an app opens its window in that outside instance, which does not use the VPN.
 * For the apps in KNOWN_APPS, vpnns starts a separate instance with its own data folder per
 * profile. For any app, vpnns warns after a launch that looks handed off.
 */
import { openSync, readSync, closeSync, readdirSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { readdir, readFile, readlink, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { info, warn } from "../core/log.js";
import type { TargetUser } from "../core/user.js";
import { ensureUserFolder, userDataHome } from "./user-files.js";

/** One option that makes an app start its own instance. */
interface IsolationOption {
  /** Whether the user's arguments or environment already contain this option or one that replaces it. */
  isPresent(args: readonly string[], env: NodeJS.ProcessEnv): boolean;
  /** The arguments that add the option; `folder` is the instance's data folder. */
  build(folder: string): string[];
  /** Whether the option needs the data folder, which vpnns then creates. */
  usesFolder: boolean;
  /** Whether the app can take this folder in the option; undefined accepts every folder. */
  acceptsFolder?(folder: string): boolean;
}

export interface KnownApp {
  /** Folder name below <data>/vpnns/<profile>/, shared by the package names of one app. */
  folder: string;
  /** Names of the app's main process in /proc/PID/comm, which the kernel cuts to 15 characters. */
  processNames: string[];
  options: IsolationOption[];
  /** The flags vpnns adds, as the hand-off warning shows them. */
  hint: string;
}

/** Return whether any argument, compared without letter case, is one of the lowercase names. */
function hasFlagIgnoringCase(args: readonly string[], names: string[]): boolean {
  return args.some((arg) => names.includes(arg.toLowerCase()));
}

/**
 * Firefox, from `firefox --help` and browser/docs/CommandLineParameters.md in the Firefox source:
 * "--no-remote: Do not accept or send remote commands; implies --new-instance" and
 * "--profile <path>: Start with the profile located at <path>". CheckArg in
 * toolkit/xre/nsAppRunner.cpp matches flags without letter case, after one or two dashes, and
 * takes a value from the next argument only. -P and --ProfileManager choose a profile too.
 */
const FIREFOX: KnownApp = {
  folder: "firefox",
  processNames: ["firefox", "firefox-esr", "firefox-bin"],
  options: [
    {
      isPresent: (args) => hasFlagIgnoringCase(args, ["-no-remote", "--no-remote"]),
      build: () => ["--no-remote"],
      usesFolder: false,
    },
    {
      isPresent: (args) => hasFlagIgnoringCase(args, ["-p", "--p", "-profile", "--profile", "-profilemanager", "--profilemanager"]),
      build: (folder) => ["--profile", folder],
      usesFolder: true,
    },
  ],
  hint: "--no-remote --profile DIR",
};

/**
 * Chromium and the browsers built on it, from docs/user_data_dir.md in the Chromium source and the
 * chromium(1) manual: separate instances must use separate user data directories, and a new
 * launch reuses the running process of its user data directory. On Linux, base/command_line.cc
 * accepts switches after "--" or "-", with letter case, and takes a value only after "=".
 */
function chromiumBased(folder: string, processNames: string[]): KnownApp {
  return {
    folder,
    processNames,
    options: [
      {
        isPresent: (args) => args.some((arg) => /^--?user-data-dir(=|$)/.test(arg)),
        build: (dataFolder) => [`--user-data-dir=${dataFolder}`],
        usesFolder: true,
      },
    ],
    hint: "--user-data-dir=DIR",
  };
}

/**
 * qBittorrent, from src/app/cmdoptions.cpp and src/app/application.cpp in its source:
 * --profile=<dir> (or the QBT_PROFILE variable) sets the folder for its configuration, and the
 * single-instance lock is keyed on that configuration folder. The value is taken after the only
 * "=", so a folder whose path contains "=" cannot be passed; vpnns then adds nothing.
 */
const QBITTORRENT: KnownApp = {
  folder: "qbittorrent",
  processNames: ["qbittorrent"],
  options: [
    {
      isPresent: (args, env) => args.some((arg) => arg.startsWith("--profile=")) || (env.QBT_PROFILE ?? "") !== "",
      build: (folder) => [`--profile=${folder}`],
      usesFolder: true,
      acceptsFolder: (folder) => !folder.includes("="),
    },
  ],
  hint: "--profile=DIR",
};

/**
 * Apps by command base name.
 * NOTE: the process names of the vendors' browsers (chrome, brave, msedge, vivaldi-bin) are the
 * usual names of their main binaries, not checked against each vendor's current package.
 */
export const KNOWN_APPS: Readonly<Record<string, KnownApp>> = {
  firefox: FIREFOX,
  "firefox-esr": FIREFOX,
  chromium: chromiumBased("chromium", ["chromium", "chromium-browser", "chrome"]),
  "chromium-browser": chromiumBased("chromium", ["chromium", "chromium-browser", "chrome"]),
  "google-chrome": chromiumBased("google-chrome", ["chrome", "google-chrome"]),
  "google-chrome-stable": chromiumBased("google-chrome", ["chrome", "google-chrome"]),
  "brave-browser": chromiumBased("brave-browser", ["brave", "brave-browser"]),
  "microsoft-edge": chromiumBased("microsoft-edge", ["msedge", "microsoft-edge"]),
  "microsoft-edge-stable": chromiumBased("microsoft-edge", ["msedge", "microsoft-edge"]),
  vivaldi: chromiumBased("vivaldi", ["vivaldi-bin", "vivaldi"]),
  "vivaldi-stable": chromiumBased("vivaldi", ["vivaldi-bin", "vivaldi"]),
  qbittorrent: QBITTORRENT,
};

/** Find the known app of a command by the base name of the command, else of the real path of its program. */
export function knownAppOf(command: readonly string[], program: string | undefined): KnownApp | undefined {
  const byName = KNOWN_APPS[basename(command[0] ?? "")];
  if (byName !== undefined || program === undefined) return byName;
  try {
    return KNOWN_APPS[basename(realpathSync(program))];
  } catch {
    return undefined;
  }
}

/** Return the data folder of a known app's separate instance in a profile. */
export function instanceFolder(user: TargetUser, profile: string, app: KnownApp, env: NodeJS.ProcessEnv = process.env): string {
  return join(userDataHome(user, env), "vpnns", profile, app.folder);
}

export interface SeparateInstance {
  command: string[];
  /** Options vpnns added; when there are any, the launch cannot be handed to an instance outside. */
  added: string[];
  /** Whether an added option names the data folder, which must then exist. */
  usesFolder: boolean;
}

/**
 * Insert the isolation options that the user's arguments lack right after the program. Returns the
 * new command line and the options added, which are none when the user gave them all.
 */
export function addIsolationOptions(command: readonly string[], app: KnownApp, folder: string, env: NodeJS.ProcessEnv): SeparateInstance {
  const [program = "", ...args] = command;
  const missing = app.options.filter((option) => !option.isPresent(args, env) && (option.acceptsFolder?.(folder) ?? true));
  const added = missing.flatMap((option) => option.build(folder));
  return { command: [program, ...added, ...args], added, usesFolder: missing.some((option) => option.usesFolder) };
}

/**
 * Give a known app its own instance in the profile: add the missing isolation options and create
 * the data folder for the user (mode 0700 under their home). Other commands are returned unchanged.
 */
export function prepareSeparateInstance(options: {
  profile: string;
  user: TargetUser;
  command: string[];
  program: string | undefined;
  env: NodeJS.ProcessEnv;
}): SeparateInstance {
  const app = knownAppOf(options.command, options.program);
  if (app === undefined) return { command: options.command, added: [], usesFolder: false };
  const folder = instanceFolder(options.user, options.profile, app, options.env);
  const result = addIsolationOptions(options.command, app, folder, options.env);
  if (result.usesFolder && ensureUserFolder(options.user, folder, { private: true })) {
    info(`created ${folder}: ${basename(options.command[0] ?? "")} in profile ${options.profile} keeps its settings, bookmarks and logins there, apart from your usual ones`);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Hand-off check

/** A launch that exits within this many milliseconds with exit code 0 may have been handed off. */
export const HANDOFF_WINDOW_MS = 3000;

/** Interpreters, whose processes are distinguished by their script argument rather than by their name. */
const INTERPRETER = /^(python[0-9.]*|node|nodejs|perl[0-9.]*|ruby[0-9.]*|sh|bash|dash|zsh|java|electron[0-9]*|gjs)$/;

/** The names, executable and script by which processes of a launched command's program are recognized. */
export interface ProgramIdentity {
  /** Values of /proc/PID/comm that count as the same program. */
  names: string[];
  /** Real path of the program; undefined for a script, whose processes show the interpreter as /proc/PID/exe. */
  executable?: string;
  /** For an interpreter, the base name of the script that the process must also have among its arguments. */
  script?: string;
}

/** Return the comm value of a program name, of which the kernel keeps the first 15 bytes. */
function commOf(name: string): string {
  return Buffer.from(name).subarray(0, 15).toString();
}

function isScript(file: string): boolean {
  const descriptor = openSync(file, "r");
  try {
    const head = Buffer.alloc(2);
    return readSync(descriptor, head, 0, 2, 0) === 2 && head.toString() === "#!";
  } finally {
    closeSync(descriptor);
  }
}

/**
 * Describe how processes of the command's program look in /proc. Returns undefined when the
 * program was not found or is an interpreter started without a script argument.
 */
export function identifyProgram(command: readonly string[], program: string | undefined): ProgramIdentity | undefined {
  if (program === undefined) return undefined;
  let real: string;
  try {
    real = realpathSync(program);
  } catch {
    return undefined;
  }
  const names = new Set([commOf(basename(command[0] ?? "")), commOf(basename(real))]);
  for (const name of knownAppOf(command, program)?.processNames ?? []) names.add(commOf(name));
  const identity: ProgramIdentity = { names: [...names] };
  try {
    if (!isScript(real)) identity.executable = real;
  } catch {
    // Unreadable: recognize processes by name alone.
  }
  if (INTERPRETER.test(basename(real))) {
    const script = command.slice(1).find((arg) => !arg.startsWith("-"));
    if (script === undefined) return undefined;
    identity.script = basename(script);
  }
  return identity;
}

export interface OutsideInstance {
  pid: number;
  name: string;
  /** Location for messages: "outside every profile", "in profile NAME" or "in network namespace net:[N]". */
  where: string;
}

async function namespaceLinkOf(path: string): Promise<string | undefined> {
  try {
    return `net:[${(await stat(path)).ino}]`;
  } catch {
    return undefined;
  }
}

/** Names of the namespaces under /run/netns by their "net:[inode]" link, and this process's own. */
async function namespaceNames(): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  const own = await readlink("/proc/self/ns/net").catch(() => undefined);
  if (own !== undefined) names.set(own, "outside every profile");
  for (const entry of await readdir("/run/netns").catch(() => [] as string[])) {
    const link = await namespaceLinkOf(join("/run/netns", entry));
    if (link !== undefined) names.set(link, entry.startsWith("vpnns-") ? `in profile ${entry.slice("vpnns-".length)}` : `in network namespace ${entry}`);
  }
  return names;
}

/**
 * Collect the pids of this process and its ancestors. They are skipped in the scan, because the
 * vpnns that a user started before sudo has the launched command among its own arguments.
 */
async function ownLineage(): Promise<Set<number>> {
  const pids = new Set([process.pid]);
  let pid = process.ppid;
  while (pid > 1 && !pids.has(pid)) {
    pids.add(pid);
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    // The command name in brackets may contain spaces, so the fields are counted from the last ")".
    pid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1] ?? 0);
  }
  return pids;
}

/**
 * Find the user's processes of the same program whose network namespace is not the profile's,
 * other than vpnns and its ancestors. Processes that end during the scan are skipped. The scan
 * reads /proc synchronously, which is about ten times faster than a read per file through promises.
 */
export async function findInstancesOutside(identity: ProgramIdentity, namespace: string, uid: number): Promise<OutsideInstance[]> {
  const inside = await namespaceLinkOf(join("/run/netns", namespace));
  const names = await namespaceNames();
  const lineage = await ownLineage();
  const found: OutsideInstance[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || lineage.has(Number(entry))) continue;
    try {
      // The program comes first: its two small reads rule out almost every process, so the
      // namespace and the larger status file are read only for the few that are left.
      const name = readFileSync(`/proc/${entry}/comm`, "utf8").trimEnd();
      const sameName = identity.names.includes(name);
      const sameExecutable = identity.executable !== undefined && readExecutable(entry) === identity.executable;
      if (!sameName && !sameExecutable) continue;
      const link = readlinkSync(`/proc/${entry}/ns/net`);
      if (link === inside) continue;
      const status = readFileSync(`/proc/${entry}/status`, "utf8");
      if (Number(/^Uid:\s*(\d+)/m.exec(status)?.[1] ?? -1) !== uid) continue;
      if (identity.script !== undefined) {
        const args = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").slice(1);
        if (!args.some((arg) => basename(arg) === identity.script)) continue;
      }
      found.push({ pid: Number(entry), name, where: names.get(link) ?? `in network namespace ${link}` });
    } catch {
      // The process ended while it was read.
    }
  }
  return found;
}

/** Return the target of /proc/PID/exe, or "" for a kernel thread or a process that has ended. */
function readExecutable(pid: string): string {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return "";
  }
}

/**
 * Warn when a launch looks handed to an instance outside the profile: it exited with code 0
 * within HANDOFF_WINDOW_MS while the user runs the same program in another network namespace.
 */
export async function warnIfHandedOff(options: {
  profile: string;
  namespace: string;
  user: TargetUser;
  command: readonly string[];
  identity: ProgramIdentity | undefined;
  exitCode: number;
  elapsedMs: number;
}): Promise<void> {
  if (options.identity === undefined || options.exitCode !== 0 || options.elapsedMs >= HANDOFF_WINDOW_MS) return;
  const outside = await findInstancesOutside(options.identity, options.namespace, options.user.uid);
  if (outside.length === 0) return;
  const app = basename(options.command[0] ?? "");
  const instances = outside
    .slice(0, 3)
    .map((entry) => `pid ${entry.pid} ${entry.where}`)
    .join(", ");
  const known = KNOWN_APPS[app];
  const fix = known
    ? `vpnns adds ${known.hint} for ${app} when the command line has no such option, so remove yours or point it at a folder no other instance uses`
    : "quit that instance and launch again, or start the app with its own data folder or profile option so that it runs as a separate instance";
  warn(
    `${app} exited with code 0 after ${(options.elapsedMs / 1000).toFixed(1)} s while ${app} runs outside profile ${options.profile} ` +
      `(${instances}${outside.length > 3 ? ", …" : ""}): the launch was probably handed to that instance, ` +
      `so what it opens uses the normal network and is not protected by the VPN; ${fix}`,
  );
}

/**
 * Find the app that a process is by its /proc/PID/comm name: one of the assigned apps first, else
 * a known app, named by its data folder ("google-chrome" for a process named "chrome"). Returns
 * undefined for other processes.
 */
export function appOfProcessName(name: string, assigned: readonly string[]): string | undefined {
  const app = assigned.find((candidate) => commOf(candidate) === name);
  if (app !== undefined) return app;
  for (const known of Object.values(KNOWN_APPS)) {
    if (known.processNames.some((processName) => commOf(processName) === name)) return known.folder;
  }
  return undefined;
}
