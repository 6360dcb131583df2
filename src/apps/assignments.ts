/**
 * Per-app profiles: the profile that `vpnns run` picks for a command without --profile, and the
 * default profile. Stored in <config>/apps.json with conf and validated by its schema; the file is
 * mode 0600 in a 0700 folder, like the profiles beside it.
 */
import type Conf from "conf";
import type { Schema } from "conf";
import { chmod, mkdir } from "node:fs/promises";
import { basename, join } from "node:path";
import { configDir } from "../core/paths.js";
import { MAX_PROFILE_NAME, PROFILE_NAME_PATTERN, validateProfileName } from "../core/names.js";
import { UsageError } from "../core/errors.js";
import { checkConfigJsonFile } from "../core/config-file.js";
import { listProfileNames, profileExists } from "../profile/store.js";

export interface AppAssignments {
  /** Profile of each app, keyed by the app name: the base name of its command. */
  apps: Record<string, string>;
  /** Profile for commands whose app has no entry in `apps`. */
  defaultProfile?: string;
}

/** Maximum app name length in UTF-8 bytes, so `vpnns-<profile>-<app>.desktop` stays below the 255-byte file name limit. */
export const MAX_APP_NAME_BYTES = 128;

/**
 * Pattern of a valid app name: no "/", whitespace or control character anywhere, no leading "-",
 * and not "." or "..". Ajv compiles patterns with the "u" flag, which `\p{C}` needs.
 */
const APP_NAME_PATTERN = "^(?!\\.\\.?$)[^-/\\s\\p{C}][^/\\s\\p{C}]*$";
const APP_NAME = new RegExp(APP_NAME_PATTERN, "u");

const profileNameSchema = { type: "string", minLength: 1, maxLength: MAX_PROFILE_NAME, pattern: PROFILE_NAME_PATTERN } as const;

const assignmentsSchema: Schema<AppAssignments> = {
  apps: {
    type: "object",
    propertyNames: { maxLength: MAX_APP_NAME_BYTES, pattern: APP_NAME_PATTERN },
    additionalProperties: profileNameSchema,
  },
  defaultProfile: profileNameSchema,
};

export function assignmentsFile(): string {
  return join(configDir(), "apps.json");
}

/** Throw a UsageError unless the name is a valid app name, the base name of a command. */
export function validateAppName(name: string): void {
  const quoted = JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
  if (name.length === 0) throw new UsageError("invalid app name: the name is empty");
  if (Buffer.byteLength(name) > MAX_APP_NAME_BYTES) {
    throw new UsageError(`invalid app name ${quoted}: ${Buffer.byteLength(name)} bytes, at most ${MAX_APP_NAME_BYTES} are allowed`);
  }
  if (name.includes("/")) {
    throw new UsageError(`invalid app name ${quoted}: give the command's base name without its folder, such as ${JSON.stringify(basename(name))}`);
  }
  if (!APP_NAME.test(name)) {
    throw new UsageError(
      `invalid app name ${quoted}: use the command's base name, without whitespace or control characters, not starting with '-' and not "." or ".."`,
    );
  }
}

/** Return the app name of a command line: the base name of its program, such as "firefox" for /usr/bin/firefox. */
export function appOfCommand(command: readonly string[]): string {
  return basename(command[0] ?? "");
}

/** The open store of the current config folder; conf compiles the schema on every open, which takes about 0.1 s. */
let opened: { folder: string; store: Conf<AppAssignments> } | undefined;

/** Open the store, which reads and validates the file; its `store` property does so again on every access. */
async function openAssignments(): Promise<Conf<AppAssignments>> {
  if (opened?.folder !== configDir()) {
    // conf loads only when an assignments file exists, so commands without one skip its cost.
    const { default: Conf } = await import("conf");
    const store = new Conf<AppAssignments>({
      cwd: configDir(),
      configName: "apps",
      projectSuffix: "",
      schema: assignmentsSchema,
      rootSchema: { additionalProperties: false },
      clearInvalidConfig: false,
      configFileMode: 0o600,
      accessPropertiesByDotNotation: false,
    });
    opened = { folder: configDir(), store };
  }
  return opened.store;
}

/** Read the stored file, reporting invalid JSON or a schema violation as a UsageError that names the file. */
async function readStoredFile(): Promise<AppAssignments> {
  try {
    return copyAssignments((await openAssignments()).store);
  } catch (error) {
    throw new UsageError(`invalid app assignments file ${assignmentsFile()}: ${(error as Error).message}; fix or delete the file`, { cause: error });
  }
}

/** Read the assignments; a missing file means none, and reading never creates the file or its folder. */
export async function readAssignments(): Promise<AppAssignments> {
  if (!checkConfigJsonFile(assignmentsFile(), "app assignments file")) return { apps: {} };
  return readStoredFile();
}

/** A copy of stored assignments; conf returns the file's object, in which "apps" may be missing. */
function copyAssignments(stored: Partial<AppAssignments>): AppAssignments {
  const copy: AppAssignments = { apps: { ...stored.apps } };
  if (stored.defaultProfile !== undefined) copy.defaultProfile = stored.defaultProfile;
  return copy;
}

/** Apply a change to the stored assignments, creating the 0700 folder and the 0600 file when needed. */
async function updateAssignments(change: (current: AppAssignments) => AppAssignments): Promise<void> {
  await mkdir(configDir(), { recursive: true, mode: 0o700 });
  await chmod(configDir(), 0o700);
  const current = checkConfigJsonFile(assignmentsFile(), "app assignments file") ? await readStoredFile() : { apps: {} };
  (await openAssignments()).store = change(current);
  await chmod(assignmentsFile(), 0o600);
}

async function requireProfile(name: string): Promise<void> {
  validateProfileName(name);
  if (await profileExists(name)) return;
  const known = await listProfileNames();
  const choices = known.length > 0 ? `known profiles: ${known.join(", ")}` : "no profiles are stored yet; import one with: vpnns profile import FILE";
  throw new UsageError(`profile ${name} not found; ${choices}`);
}

/** Assign a stored profile to an app. */
export async function setAppProfile(app: string, profile: string): Promise<void> {
  validateAppName(app);
  await requireProfile(profile);
  await updateAssignments((current) => ({ ...current, apps: { ...current.apps, [app]: profile } }));
}

/** Remove an app's assignment; returns the profile it had, or undefined when it had none. */
export async function unsetAppProfile(app: string): Promise<string | undefined> {
  validateAppName(app);
  const previous = (await readAssignments()).apps[app];
  if (previous === undefined) return undefined;
  await updateAssignments((current) => {
    const apps = { ...current.apps };
    delete apps[app];
    return { ...current, apps };
  });
  return previous;
}

/** Set the default profile, or clear it with undefined. */
export async function setDefaultProfile(profile: string | undefined): Promise<void> {
  if (profile !== undefined) await requireProfile(profile);
  if (profile === undefined && (await readAssignments()).defaultProfile === undefined) return;
  await updateAssignments((current) => {
    const next: AppAssignments = { apps: current.apps };
    if (profile !== undefined) next.defaultProfile = profile;
    return next;
  });
}

/** Apps assigned to a profile, sorted by name. */
export function appsOfProfile(assignments: AppAssignments, profile: string): string[] {
  return Object.entries(assignments.apps)
    .filter(([, assigned]) => assigned === profile)
    .map(([app]) => app)
    .sort();
}

export interface ProfileChoice {
  profile: string;
  /** The rule that chose the profile, for messages: "--profile", "app firefox" or "default profile". */
  reason: string;
}

/**
 * Choose the profile for `vpnns run` and `vpnns desktop`: --profile, else the profile assigned to
 * the app, else the default profile. Throws a UsageError that lists the stored profiles and the
 * ways to choose one when none applies, and when an assigned or default profile no longer exists.
 */
export async function chooseProfile(requested: string | undefined, app: string): Promise<ProfileChoice> {
  if (requested !== undefined) return { profile: requested, reason: "--profile" };
  const assignments = await readAssignments();
  const assigned = Object.hasOwn(assignments.apps, app) ? assignments.apps[app] : undefined;
  if (assigned !== undefined) {
    await requireChosenProfile(assigned, `assigned to app ${app}`, `vpnns app set ${app} NAME' or 'vpnns app unset ${app}`);
    return { profile: assigned, reason: `app ${app}` };
  }
  if (assignments.defaultProfile !== undefined) {
    await requireChosenProfile(assignments.defaultProfile, "the default profile", "vpnns profile default NAME' or 'vpnns profile default --clear");
    return { profile: assignments.defaultProfile, reason: "default profile" };
  }

  const names = await listProfileNames();
  if (names.length === 0) throw new UsageError("no profile given and no profiles are stored; import one with: vpnns profile import FILE");
  const target = app === "" ? "APP" : app;
  throw new UsageError(
    `no profile given for ${app === "" ? "the command" : app}; stored profiles: ${names.join(", ")}. ` +
      `Choose one with --profile NAME, assign one to the app with 'vpnns app set ${target} NAME', ` +
      `or set a default with 'vpnns profile default NAME'`,
  );
}

async function requireChosenProfile(profile: string, role: string, fix: string): Promise<void> {
  if (await profileExists(profile)) return;
  const known = await listProfileNames();
  const choices = known.length > 0 ? `stored profiles: ${known.join(", ")}` : "no profiles are stored";
  throw new UsageError(`profile ${profile}, ${role} in ${assignmentsFile()}, not found; ${choices}; change it with '${fix}', or give --profile NAME`);
}
