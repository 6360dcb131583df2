/**
 * Desktop launchers: `vpnns desktop <app>` writes ~/.local/share/applications/vpnns-<profile>-<app>.desktop
 * for the user, based on the app's own desktop entry where one is installed, so the app appears in
 * the menu a second time and starts inside the profile.
 */
import { accessSync, constants, readdirSync, readFileSync, realpathSync } from "node:fs";
import { basename, isAbsolute, join } from "node:path";
import { UsageError } from "../core/errors.js";
import { findProgram } from "../core/app.js";
import type { TargetUser } from "../core/user.js";
import { literalArgument, parseDesktopEntry, renderLauncher, splitExec, unescapeValue, type DesktopEntryGroup } from "./desktop-entry.js";
import { asUser, removeUserFile, userDataHome, writeUserFile } from "./user-files.js";

/** Return the folders that XDG_DATA_DIRS lists, or the specification's default /usr/local/share:/usr/share. */
export function dataDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs = (env.XDG_DATA_DIRS ?? "").split(":").filter((dir) => isAbsolute(dir));
  return dirs.length > 0 ? dirs : ["/usr/local/share", "/usr/share"];
}

/** List the applications folders to search for an app's entry, in order of precedence: the user's own first. */
export function applicationFolders(user: TargetUser, env: NodeJS.ProcessEnv = process.env): string[] {
  return [join(userDataHome(user, env), "applications"), ...dataDirs(env).map((dir) => join(dir, "applications"))];
}

export function launcherFile(user: TargetUser, profile: string, app: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(userDataHome(user, env), "applications", `vpnns-${profile}-${app}.desktop`);
}

export interface FoundEntry {
  file: string;
  entry: DesktopEntryGroup;
  /** The entry's Exec in field-code form. */
  command: string[];
}

/** Maximum folder depth below an applications folder that the search visits; entries in subfolders are rare. */
const MAX_SEARCH_DEPTH = 2;

function readEntry(file: string): FoundEntry | undefined {
  let entry: DesktopEntryGroup;
  try {
    entry = parseDesktopEntry(readFileSync(file, "utf8"));
  } catch {
    return undefined;
  }
  if (entry.get("Type") !== "Application" || entry.get("Hidden") === "true") return undefined;
  const exec = entry.get("Exec");
  const command = exec === undefined ? undefined : splitExec(unescapeValue(exec));
  if (command === undefined || command.length === 0) return undefined;
  return { file, entry, command };
}

/** List the .desktop files below a folder, sorted, without vpnns' own launchers. */
function listEntryFiles(folder: string, depth = 0): string[] {
  let names: string[];
  try {
    names = readdirSync(folder).sort();
  } catch {
    return [];
  }
  const files: string[] = [];
  for (const name of names) {
    const path = join(folder, name);
    if (name.endsWith(".desktop")) {
      if (!name.startsWith("vpnns-")) files.push(path);
    } else if (depth < MAX_SEARCH_DEPTH && !name.includes(".")) {
      files.push(...listEntryFiles(path, depth + 1));
    }
  }
  return files;
}

/**
 * Find the app's desktop entry: <app>.desktop in the first folder that has one, else the first
 * entry whose Exec program has the app's base name. Reads happen as the user, so root reads
 * nothing that the user could not.
 */
export function findAppEntry(user: TargetUser, app: string, folders: readonly string[]): FoundEntry | undefined {
  return asUser(user, () => {
    for (const folder of folders) {
      const found = readEntry(join(folder, `${app}.desktop`));
      if (found !== undefined) return found;
    }
    for (const folder of folders) {
      for (const file of listEntryFiles(folder)) {
        const found = readEntry(file);
        if (found !== undefined && basename(found.command[0]!.replaceAll("%%", "%")) === app) return found;
      }
    }
    return undefined;
  });
}

/**
 * Return the command that starts this vpnns for a launcher: the `vpnns` on PATH when it is this program,
 * else this program's script when it is executable, else node with the script.
 */
export function vpnnsCommand(script = process.argv[1], path = process.env.PATH ?? ""): string[] {
  if (script === undefined) throw new UsageError("cannot write a launcher: the path of the vpnns script is unknown");
  const real = realpathSync(script);
  const onPath = findProgram("vpnns", path);
  if (onPath !== undefined && isAbsolute(onPath) && realpathSync(onPath) === real) return [onPath];
  try {
    accessSync(real, constants.X_OK);
    return [real];
  } catch {
    return [process.execPath, real];
  }
}

export interface LauncherResult {
  file: string;
  /** The app's entry the launcher is based on; undefined when none was found and a minimal one was written. */
  basedOn?: string;
}

/** Write the launcher for an app in a profile, owned by the user with mode 0644. */
export function writeLauncher(options: { user: TargetUser; profile: string; app: string; env?: NodeJS.ProcessEnv; vpnns?: string[] }): LauncherResult {
  const env = options.env ?? process.env;
  const vpnns = options.vpnns ?? vpnnsCommand();
  // The specification forbids "=" in the program path of an Exec value.
  if (vpnns[0]!.includes("=")) throw new UsageError(`cannot write a launcher: the path ${vpnns[0]} contains "=", which an Exec key cannot start with`);
  const found = findAppEntry(options.user, options.app, applicationFolders(options.user, env));
  const content = renderLauncher({
    profile: options.profile,
    app: options.app,
    vpnnsCommand: vpnns,
    appCommand: found?.command ?? [literalArgument(options.app)],
    ...(found ? { original: found.entry } : {}),
  });
  const file = launcherFile(options.user, options.profile, options.app, env);
  writeUserFile(options.user, file, content, 0o644);
  return { file, ...(found ? { basedOn: found.file } : {}) };
}

/** Remove the launcher of an app in a profile; returns its path and whether it existed. */
export function removeLauncher(options: { user: TargetUser; profile: string; app: string; env?: NodeJS.ProcessEnv }): { file: string; removed: boolean } {
  const file = launcherFile(options.user, options.profile, options.app, options.env ?? process.env);
  return { file, removed: removeUserFile(options.user, file) };
}
