/**
 * Profiles on disk: one JSON file per profile in <config>/profiles, written and read with conf and
 * validated by its schema. Profiles hold private keys, so files are mode 0600 in 0700 folders.
 */
import type Conf from "conf";
import { chmod, mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import { basename, extname, resolve } from "node:path";
import { configDir, profileFile, profilesDir } from "../core/paths.js";
import { validateProfileName } from "../core/names.js";
import { UsageError } from "../core/errors.js";
import { MAX_CONFIG_BYTES, parseWgQuick } from "./wgquick.js";
import { profileRootSchema, profileSchema, validateStoredProfile } from "./schema.js";
import type { Profile } from "./types.js";
import { pathExists } from "../core/files.js";
import { run } from "../tools/exec.js";

/** Open a profile's conf store. conf and its schema compiler load only here, on the import path. */
async function openStore(name: string, defaults?: Profile): Promise<Conf<Profile>> {
  const { default: Conf } = await import("conf");
  return new Conf<Profile>({
    cwd: profilesDir(),
    configName: name,
    projectSuffix: "",
    schema: profileSchema,
    rootSchema: profileRootSchema,
    ...(defaults ? { defaults } : {}),
    clearInvalidConfig: false,
    configFileMode: 0o600,
    accessPropertiesByDotNotation: false,
  });
}

/** Create the config folders with mode 0700, and tighten them when they exist with looser modes. */
async function ensureFolders(): Promise<void> {
  for (const folder of [configDir(), profilesDir()]) {
    await mkdir(folder, { recursive: true, mode: 0o700 });
    await chmod(folder, 0o700);
  }
}

/** Derive the profile name a file gets without --name: its base name without the .conf extension. */
export function defaultProfileName(file: string): string {
  const base = basename(file);
  return extname(base) === ".conf" ? base.slice(0, -".conf".length) : base;
}

export interface ImportResult {
  profile: Profile;
  warnings: string[];
  replaced: boolean;
}

/** Parse a wg-quick file and store it as a profile. Nothing is stored when any check fails. */
export async function importProfile(file: string, options: { name?: string; force?: boolean }): Promise<ImportResult> {
  const name = options.name ?? defaultProfileName(file);
  const fromFileName = options.name === undefined ? `the name comes from the file name ${JSON.stringify(basename(file))}; ` : "";
  validateProfileName(name, `${fromFileName}choose another with --name`);
  const text = await readConfigFile(file);
  const { config, warnings } = parseWgQuick(text, file);
  const fileInfo = await stat(file);
  if ((fileInfo.mode & 0o004) !== 0) {
    warnings.push(`${file} is readable by every user of this machine and contains a private key: run chmod 600 ${file}, or delete it now that it is imported`);
  }

  const target = profileFile(name);
  const exists = await pathExists(target);
  if (exists && !options.force) throw new UsageError(`profile ${name} already exists (${target}); add --force to replace it`);

  const profile: Profile = { name, ...config, source: resolve(file), importedAt: new Date().toISOString() };
  await ensureFolders();
  if (exists) await rm(target);
  const store = await openStore(name, profile);
  store.store = profile;
  await chmod(target, 0o600);
  return { profile, warnings, replaced: exists };
}

async function readConfigFile(file: string): Promise<string> {
  let size: number;
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new UsageError(`cannot import ${file}: not a regular file`);
    size = info.size;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "file not found" : (error as Error).message}`);
  }
  if (size > MAX_CONFIG_BYTES) {
    throw new UsageError(`cannot import ${file}: ${size} bytes, more than the ${MAX_CONFIG_BYTES} bytes a WireGuard configuration can plausibly need`);
  }
  return readAsCaller(file);
}

/**
 * Read the file with the permissions of the user behind sudo, so that importing cannot show lines
 * of files only root may read (parse errors quote the offending line). Root callers read directly.
 */
async function readAsCaller(file: string): Promise<string> {
  const uid = process.env.SUDO_UID;
  const gid = process.env.SUDO_GID;
  if (uid === undefined || uid === "0" || !/^\d+$/.test(uid) || gid === undefined || !/^\d+$/.test(gid)) return readFile(file, "utf8");
  const result = await run(["setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--init-groups", "--", "cat", "--", file], {
    intent: `read ${file} as user ${uid}`,
    allowFailure: true,
  });
  if (result.failed) throw new UsageError(`cannot read ${file} as user ${process.env.SUDO_USER ?? uid}: ${result.stderr.trim() || "permission denied"}`);
  return result.stdout;
}

/** Load a stored profile, rejecting files that others can read and contents that fail validation. */
export async function loadProfile(name: string): Promise<Profile> {
  validateProfileName(name);
  const file = profileFile(name);
  let mode: number;
  try {
    mode = (await stat(file)).mode;
  } catch {
    const known = await listProfileNames();
    const choices = known.length > 0 ? `known profiles: ${known.join(", ")}` : "no profiles are stored yet";
    throw new UsageError(`profile ${name} not found (${file}); ${choices}; import one with: vpnns profile import FILE`);
  }
  if ((mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, "0");
    throw new UsageError(`profile file ${file} has mode ${octal}, but it contains a private key and must be readable by root only: run chmod 600 ${file}`);
  }
  // Reading skips conf: the hand check covers everything the schema does, names the JSON path and
  // the value in its messages, and spares every command the schema compilation.
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, "utf8"));
  } catch (error) {
    throw new UsageError(`invalid profile file ${file}: ${(error as Error).message}; fix it or import the profile again with --force`, { cause: error });
  }
  const profile = validateStoredProfile(value, file);
  if (profile.name !== name) throw new UsageError(`invalid profile file ${file}: "name" is ${JSON.stringify(profile.name)}, but the file is named for ${JSON.stringify(name)}`);
  return profile;
}

export async function listProfileNames(): Promise<string[]> {
  try {
    const entries = await readdir(profilesDir());
    return entries.filter((entry) => entry.endsWith(".json")).map((entry) => entry.slice(0, -".json".length)).sort();
  } catch {
    return [];
  }
}

export async function profileExists(name: string): Promise<boolean> {
  return pathExists(profileFile(name));
}

export async function removeProfileFile(name: string): Promise<void> {
  await rm(profileFile(name), { force: true });
}

/** Copy the profile with private and preshared keys replaced, for output. */
export function redactProfile(profile: Profile): Profile {
  return {
    ...profile,
    interface: { ...profile.interface, privateKey: "(hidden)" },
    peers: profile.peers.map((peer) => (peer.presharedKey === undefined ? peer : { ...peer, presharedKey: "(hidden)" })),
  };
}
