/**
 * Profiles on disk: one JSON file per profile in <config>/profiles, written and read with conf and
 * validated by its schema. Profiles hold private keys, so files are mode 0600 in 0700 folders.
 */
import type Conf from "conf";
import { constants } from "node:fs";
import type { Stats } from "node:fs";
import { chmod, lstat, mkdir, open, readdir, readFile, rm, stat, type FileHandle } from "node:fs/promises";
import { basename, extname, resolve } from "node:path";
import { configDir, profileFile, profilesDir } from "../core/paths.js";
import { findInterfaceClash, interfaceName, validateProfileName } from "../core/names.js";
import { UsageError } from "../core/errors.js";
import { describeErrno } from "../core/errno.js";
import { MAX_CONFIG_BYTES, parseWgQuick } from "./wgquick.js";
import { profileRootSchema, profileSchema, validateStoredProfile } from "./schema.js";
import type { Profile } from "./types.js";
import type { PublishedPort } from "../publish/spec.js";
import { pathExists } from "../core/files.js";
import { requireOwnInterface } from "../core/interface-clash.js";
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

  const clash = findInterfaceClash(name, await listProfileNames());
  if (clash !== undefined) {
    throw new UsageError(
      `invalid profile name "${name}": its interface name ${interfaceName(name)} is also that of profile ${clash}; choose another with --name`,
    );
  }

  const target = profileFile(name);
  const exists = await pathExists(target);
  if (exists && !options.force) throw new UsageError(`profile ${name} already exists (${target}); add --force to replace it`);
  if (exists) await checkReplaceable(target);

  const profile: Profile = { name, ...config, source: resolve(file), importedAt: new Date().toISOString() };
  // A provider's new file replaces the tunnel settings, not the ports the user published.
  const previousPublish = exists ? await loadProfile(name).then((old) => old.publish, () => undefined) : undefined;
  if (previousPublish !== undefined && previousPublish.length > 0) profile.publish = previousPublish;
  await ensureFolders();
  if (exists) await rm(target);
  const store = await openStore(name, profile);
  store.store = profile;
  await chmod(target, 0o600);
  return { profile, warnings, replaced: exists };
}

/** Reject replacing anything but a regular file or a symbolic link, which rm removes without following. */
async function checkReplaceable(target: string): Promise<void> {
  const info = await lstat(target);
  if (info.isFile() || info.isSymbolicLink()) return;
  throw new UsageError(`cannot replace ${target}: it is not a regular file; move it away, then import again`);
}

async function readConfigFile(file: string): Promise<string> {
  let info: Stats;
  try {
    info = await stat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new UsageError(`file ${file} not found; check the path of the wg-quick file`);
    throw new UsageError(`failed to read ${file}: ${describeErrno(error)}; check the path of the wg-quick file`);
  }
  if (!info.isFile()) throw new UsageError(`invalid file ${file}: not a regular file; give the path of a wg-quick .conf file`);
  if (info.size > MAX_CONFIG_BYTES) {
    throw new UsageError(
      `invalid file ${file}: ${info.size} bytes, at most ${MAX_CONFIG_BYTES} (1 MiB) are allowed; give the wg-quick file from your VPN provider`,
    );
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
    secretOutput: true,
  });
  if (result.failed) throw new UsageError(`cannot read ${file} as user ${process.env.SUDO_USER ?? uid}: ${result.stderr.trim() || "permission denied"}`);
  return result.stdout;
}

/**
 * Maximum size of a stored profile file in bytes: 4 times the wg-quick limit, because the JSON
 * form adds quotes, commas and indentation to every list entry of the largest importable file.
 */
export const MAX_PROFILE_FILE_BYTES = 4 * MAX_CONFIG_BYTES;

/**
 * Load a stored profile, rejecting files that others can read, contents that fail validation and
 * a name that shares its interface name with another profile.
 */
export async function loadProfile(name: string): Promise<Profile> {
  validateProfileName(name);
  const file = profileFile(name);
  const text = await readProfileFile(name, file);
  // Reading skips conf: the hand check covers everything the schema does, names the JSON path and
  // the value in its messages, and spares every command the schema compilation.
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const reason = describeJsonError((error as Error).message, text);
    throw new UsageError(`invalid profile file ${file}: ${reason}; fix it or import the profile again with --force`, { cause: error });
  }
  const profile = validateStoredProfile(value, file);
  if (profile.name !== name) throw new UsageError(`invalid profile file ${file}: "name" is ${JSON.stringify(profile.name)}, but the file is named for ${JSON.stringify(name)}`);
  await requireOwnInterface(name, await listProfileNames());
  return profile;
}

/**
 * Return a profile's stored publish list, or an empty list when the profile file is missing or
 * fails a check of loadProfile, as `vpnns status` reports it. A file whose JSON has no "publish"
 * key gets the empty list without the checks of loadProfile, because their outcome cannot change
 * it. This spares status the validation of every profile, about 1.5 ms each.
 */
export async function loadPublishList(name: string): Promise<PublishedPort[]> {
  let value: unknown;
  try {
    validateProfileName(name);
    value = JSON.parse(await readProfileFile(name, profileFile(name)));
  } catch {
    return [];
  }
  if (typeof value !== "object" || value === null || !("publish" in value)) return [];
  return loadProfile(name).then(
    (profile) => profile.publish ?? [],
    () => [],
  );
}

/** Replace the profile's list of published ports; conf validates the result against the schema. */
export async function savePublishList(name: string, entries: PublishedPort[]): Promise<Profile> {
  const profile = await loadProfile(name);
  const updated: Profile = { ...profile };
  if (entries.length > 0) updated.publish = entries;
  else delete updated.publish;
  const store = await openStore(name);
  store.store = updated;
  await chmod(profileFile(name), 0o600);
  return updated;
}

/**
 * Read a profile file as UTF-8 text. The file must be a regular file, not a symbolic link, of mode
 * 0600 or stricter and at most MAX_PROFILE_FILE_BYTES long. O_NONBLOCK keeps a FIFO from blocking
 * the open, and the checks use the opened file, so a rename in between cannot swap it.
 */
async function readProfileFile(name: string, file: string): Promise<string> {
  const reimport = `remove it and import the profile again with: vpnns profile import FILE --name ${name}`;
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ELOOP") throw new UsageError(`invalid profile file ${file}: it is a symbolic link, and vpnns reads only regular files there; ${reimport}`);
    if (code !== "ENOENT" && code !== "ENOTDIR") throw error;
    const known = await listProfileNames();
    const choices = known.length > 0 ? `known profiles: ${known.join(", ")}` : "no profiles are stored yet";
    throw new UsageError(`profile ${name} not found (${file}); ${choices}; import one with: vpnns profile import FILE`);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new UsageError(`invalid profile file ${file}: not a regular file; ${reimport}`);
    if ((info.mode & 0o077) !== 0) {
      const octal = (info.mode & 0o777).toString(8).padStart(4, "0");
      throw new UsageError(`profile file ${file} has mode ${octal}, but it contains a private key and must be readable by root only: run chmod 600 ${file}`);
    }
    const self = process.geteuid?.() ?? 0;
    if (info.uid !== self) {
      // The owner can rewrite the endpoint and DNS servers of a profile that root brings up.
      throw new UsageError(`profile file ${file} is owned by uid ${info.uid}, but it contains a private key and must be owned by uid ${self}: run chown ${self === 0 ? "root:root" : `${self}:${self}`} ${file}`);
    }
    if (info.size > MAX_PROFILE_FILE_BYTES) {
      throw new UsageError(`invalid profile file ${file}: ${info.size} bytes, at most ${MAX_PROFILE_FILE_BYTES} are allowed; ${reimport}`);
    }
    const bytes = await handle.readFile();
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      throw new UsageError(`invalid profile file ${file}: not valid UTF-8 text; ${reimport}`);
    }
  } finally {
    await handle.close();
  }
}

/**
 * Rewrite a JSON.parse message so that it quotes no part of the file, which contains a private key, because
 * V8 (Node.js 20) quotes the text around an unexpected token. Positions become line and column.
 */
export function describeJsonError(message: string, text: string): string {
  const token = /^Unexpected token '(.)', .* is not valid JSON$/su.exec(message);
  if (token !== null) return `unexpected character ${JSON.stringify(token[1])}, the file is not valid JSON`;
  const position = / in JSON at position (\d+)$/.exec(message);
  if (position === null) return message;
  const offset = Number(position[1]);
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const column = offset - (before.lastIndexOf("\n") + 1) + 1;
  return `${message.slice(0, position.index)} at line ${line}, column ${column}`;
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
