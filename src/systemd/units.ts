/**
 * systemd units for vpnns: the vpnns@.service template that brings a profile up at boot, its
 * multi-user.target.wants link per profile, and the drop-in that runs another service inside a
 * profile. Units are written as files only, and nothing here talks to a running systemd.
 */
import { lstat, mkdir, readFile, readlink, rename, rm, rmdir, stat, symlink, writeFile } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import { UsageError, VpnnsError } from "../core/errors.js";
import { logCommand } from "../core/log.js";
import { netnsEtcDir, netnsRunFile } from "../core/paths.js";
import { validateProfileName } from "../core/names.js";

/** The folder of local units, where `systemctl enable` also writes (systemd.unit(5), "Unit File Load Path"). */
export const DEFAULT_UNIT_DIR = "/etc/systemd/system";
export const TEMPLATE_NAME = "vpnns@.service";
/** The target whose .wants folder `enable` links into, as the template's [Install] section names it. */
export const WANTED_BY = "multi-user.target";
/** File name of the drop-in that `attach` writes into SERVICE.d/. */
export const DROP_IN_NAME = "vpnns.conf";

/** Seconds that the template's `vpnns up` retries an unreachable endpoint, unless `install --retry-for` sets another. */
export const DEFAULT_RETRY_FOR_SECONDS = 120;
/** Seconds that each attempt of the template's `vpnns up` waits for the first handshake. */
export const UNIT_HANDSHAKE_TIMEOUT_SECONDS = 10;
/**
 * Seconds added to the retry time and one handshake wait for TimeoutStartSec=: room for the last
 * attempt's setup and unwinding, and for one name lookup, which glibc may stretch to 30 s
 * (resolv.conf's default timeout of 5 s, 2 attempts, 3 servers).
 */
const START_TIMEOUT_MARGIN_SECONDS = 60;

/** Maximum unit name length, so that the drop-in folder name with ".d" fits the 255-byte file name limit of Linux file systems. */
const MAX_SERVICE_NAME = 253;
/** Characters systemd allows in unit names besides "@" (unit_name_is_valid in systemd 252). */
const UNIT_NAME_CHARACTERS = /^[A-Za-z0-9:_.\\-]+$/;
/** Unit types other than services, named by their suffix. */
const OTHER_UNIT_SUFFIXES = [".socket", ".target", ".timer", ".mount", ".automount", ".swap", ".path", ".slice", ".scope", ".device"];

/**
 * Return the unit folder as an absolute path: the override, else VPNNS_SYSTEMD_DIR, else
 * /etc/systemd/system. An empty --unit-dir is rejected, so that it never falls back to the system folder.
 */
export function unitDir(override?: string): string {
  if (override !== undefined && override.trim() === "") {
    throw new UsageError("invalid --unit-dir: the path is empty; give a folder, such as /etc/systemd/system");
  }
  return resolve(override || process.env.VPNNS_SYSTEMD_DIR || DEFAULT_UNIT_DIR);
}

/** Return the template instance of a profile, such as "vpnns@work.service". */
export function instanceName(profile: string): string {
  return `vpnns@${profile}.service`;
}

export interface TemplateOptions {
  /** The vpnns command: an absolute path to vpnns, or Node.js and the vpnns script, both absolute. */
  command: readonly string[];
  /** Documentation URLs, such as "file:///usr/lib/node_modules/vpnns/README.md". */
  documentation: readonly string[];
  /** Variables that the unit sets, such as VPNNS_CONFIG_DIR. */
  environment: Readonly<Record<string, string>>;
  retryForSeconds: number;
  /** Comment lines at the top that state where the file comes from, without the "# ". */
  origin: readonly string[];
}

/** The options of systemd/vpnns@.service in the repository, which packages and hand installs copy. */
export const SHIPPED_TEMPLATE_OPTIONS: TemplateOptions = {
  command: ["/usr/local/bin/vpnns"],
  documentation: ["file:///usr/local/lib/node_modules/vpnns/README.md"],
  environment: {},
  retryForSeconds: DEFAULT_RETRY_FOR_SECONDS,
  origin: [
    "This copy assumes `npm install -g` with npm's prefix /usr/local. `vpnns systemd install`",
    "writes one with the paths of the vpnns that runs it.",
  ],
};

/** Render vpnns@.service. Throws an Error when the command is not absolute. */
export function renderTemplate(options: TemplateOptions): string {
  const [executable] = options.command;
  if (executable === undefined || !isAbsolute(executable)) {
    throw new Error(`the unit's command must start with an absolute path, got ${JSON.stringify(executable ?? "")}`);
  }
  const retryFor = Math.ceil(options.retryForSeconds);
  const command = formatExecArguments(options.command);
  const lines = [
    "# Brings the vpnns profile named by the instance up at start and down at stop:",
    "# vpnns@work.service is profile work.",
    ...options.origin.map((line) => `# ${line}`),
    "[Unit]",
    "Description=vpnns profile %i (network namespace vpnns-%i behind WireGuard)",
  ];
  if (options.documentation.length > 0) lines.push(`Documentation=${options.documentation.map(escapeSpecifiers).join(" ")}`);
  lines.push(
    "# Endpoint host names resolve with the host's DNS, so the network and name service come first.",
    "Wants=network-online.target",
    "After=network-online.target nss-lookup.target",
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    "# Keep this service in the host's mount namespace: no PrivateTmp=, PrivateMounts=, ProtectSystem=,",
    "# ProtectHome=, ReadOnlyPaths= or other setting that implies a mount namespace of its own. `vpnns up`",
    "# mounts /run/netns/vpnns-%i, and a mount made in a private mount namespace is invisible to the rest",
    "# of the system, so `ip netns exec`, `vpnns run` and NetworkNamespacePath= would not find it.",
  );
  for (const [name, value] of Object.entries(options.environment)) lines.push(`Environment=${quoteUnitValue(`${name}=${value}`)}`);
  lines.push(
    `# On no handshake or an endpoint name that does not resolve yet, vpnns retries for ${retryFor} s, logging`,
    "# each attempt, then fails. The start timeout leaves room for the last attempt.",
    `ExecStart=${command} up %i --retry-for ${retryFor} --handshake-timeout ${UNIT_HANDSHAKE_TIMEOUT_SECONDS}`,
    `ExecStop=${command} down %i`,
    `TimeoutStartSec=${retryFor + UNIT_HANDSHAKE_TIMEOUT_SECONDS + START_TIMEOUT_MARGIN_SECONDS}`,
    "",
    "[Install]",
    `WantedBy=${WANTED_BY}`,
    "",
  );
  return lines.join("\n");
}

/** Render the drop-in that runs a service in a profile's network namespace with the profile's DNS files. */
export function renderDropIn(service: string, profile: string): string {
  validateProfileName(profile);
  const etc = netnsEtcDir(profile);
  const unit = instanceName(profile);
  return [
    `# Runs ${service} inside vpnns profile ${profile}. Written by \`vpnns systemd attach\`, and`,
    `# \`vpnns systemd detach ${service}\` removes it.`,
    "[Unit]",
    `# Starting this service starts ${unit} first, and stopping ${unit} stops this service.`,
    `BindsTo=${unit}`,
    `After=${unit}`,
    "",
    "[Service]",
    `NetworkNamespacePath=${netnsRunFile(profile)}`,
    "# `ip netns exec` mounts the files in /etc/netns/NAME over /etc, but systemd does not do so for",
    "# NetworkNamespacePath=: without these mounts the service would resolve names with the host's files.",
    `BindReadOnlyPaths=${join(etc, "resolv.conf")}:/etc/resolv.conf ${join(etc, "nsswitch.conf")}:/etc/nsswitch.conf`,
    "# glibc asks nscd over /run/nscd/socket before it reads nsswitch.conf, and nscd answers from the",
    "# host's network. The \"-\" skips the folder where nscd is not installed.",
    "InaccessiblePaths=-/run/nscd",
    "",
  ].join("\n");
}

/**
 * Characters that vpnns does not write into unit values. systemd 252 takes "$" literally in the
 * executable name but as a variable in arguments, and it rejects quotes in the executable name.
 * It reads backslashes as escapes, and a control character would end the line.
 */
const UNSUPPORTED_IN_UNIT_VALUE = /["'\\$\x00-\x1f\x7f]/;
const PLAIN_UNIT_WORD = /^[A-Za-z0-9_@+=:,./-]+$/;

/**
 * Format arguments for an ExecStart= line (systemd.service(5), "Command lines"): plain words stay
 * as they are, others go in double quotes with "%" doubled, so that systemd expands no specifier in
 * them. Throws a VpnnsError for a value with a character in UNSUPPORTED_IN_UNIT_VALUE.
 */
export function formatExecArguments(argv: readonly string[]): string {
  return argv.map(quoteUnitValue).join(" ");
}

/** Double-quote a value with "%" doubled unless it is a plain word, as Exec and Environment= lines read it. */
function quoteUnitValue(value: string): string {
  if (UNSUPPORTED_IN_UNIT_VALUE.test(value)) {
    throw new VpnnsError(
      `cannot write ${JSON.stringify(value)} into a unit file: quotes, backslashes, "$" and control characters are not supported; ` +
        "install vpnns and Node.js under paths without them, or pass --vpnns-path",
    );
  }
  return PLAIN_UNIT_WORD.test(value) ? value : `"${escapeSpecifiers(value)}"`;
}

function escapeSpecifiers(value: string): string {
  return value.replaceAll("%", "%%");
}

/**
 * Normalize a service name as given on the command line ("transmission-daemon" or
 * "transmission-daemon.service") to the unit name. Throws a UsageError for paths, other unit
 * types, templates without an instance, vpnns's own units and characters systemd rejects.
 */
export function normalizeServiceName(input: string): string {
  const quoted = JSON.stringify(input);
  if (input.trim() === "") throw new UsageError("invalid service name: the name is empty");
  if (input.includes("/")) {
    throw new UsageError(`invalid service name ${quoted}: give a unit name such as transmission-daemon.service, not a path`);
  }
  const otherType = OTHER_UNIT_SUFFIXES.find((suffix) => input.endsWith(suffix));
  if (otherType !== undefined) {
    throw new UsageError(`invalid service name ${quoted}: only services can run inside a profile, and this names a ${otherType.slice(1)} unit`);
  }
  const name = input.endsWith(".service") ? input : `${input}.service`;
  const stem = name.slice(0, -".service".length);
  if (name.length > MAX_SERVICE_NAME) {
    throw new UsageError(`invalid service name ${quoted}: ${name.length} characters with .service, at most ${MAX_SERVICE_NAME} are allowed`);
  }
  const [prefix = "", instance, ...more] = stem.split("@");
  const validInstance = instance === undefined || instance === "" || UNIT_NAME_CHARACTERS.test(instance);
  if (more.length > 0 || !UNIT_NAME_CHARACTERS.test(prefix) || !validInstance) {
    throw new UsageError(
      `invalid service name ${quoted}: use letters, digits and ":", "-", "_", ".", "\\", with at most one "@" before an instance name`,
    );
  }
  if (instance === "") {
    throw new UsageError(`invalid service name ${quoted}: it is a template; give an instance, such as ${prefix}@NAME.service`);
  }
  if (prefix === "vpnns" && instance !== undefined) {
    throw new UsageError(`invalid service name ${quoted}: the vpnns@ units bring profiles up and cannot run inside one`);
  }
  return name;
}

export type WriteOutcome = "created" | "updated" | "unchanged";

/** Write a file through a temporary file and a rename, so systemd never reads half of it. */
async function writeFileAtomic(path: string, text: string): Promise<WriteOutcome> {
  const old = await readFile(path, "utf8").catch(() => undefined);
  if (old === text) return "unchanged";
  logCommand(`write ${path}`);
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(temporary, text, { mode: 0o644 });
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw fileError(`write ${path}`, error);
  }
  return old === undefined ? "created" : "updated";
}

function fileError(intent: string, error: unknown): VpnnsError {
  return new VpnnsError(`failed to ${intent}: ${(error as Error).message}`, { cause: error });
}

async function makeDirectory(path: string): Promise<void> {
  try {
    await mkdir(path, { recursive: true, mode: 0o755 });
  } catch (error) {
    throw fileError(`create folder ${path}`, error);
  }
}

/** Write the template into the unit folder, creating the folder when it is missing. */
export async function installTemplate(dir: string, text: string): Promise<{ path: string; outcome: WriteOutcome }> {
  await makeDirectory(dir);
  const path = join(dir, TEMPLATE_NAME);
  return { path, outcome: await writeFileAtomic(path, text) };
}

/** Throw unless the template is installed in the unit folder. */
async function requireTemplate(dir: string): Promise<string> {
  const path = join(dir, TEMPLATE_NAME);
  try {
    await stat(path);
  } catch {
    throw new VpnnsError(`${TEMPLATE_NAME} is not installed in ${dir}: run 'vpnns systemd install' first`);
  }
  return path;
}

/** Return the path of the link that `systemctl enable vpnns@PROFILE` creates. */
export function wantsLink(dir: string, profile: string): string {
  return join(dir, `${WANTED_BY}.wants`, instanceName(profile));
}

/**
 * Enable the template for a profile: link WANTED_BY.wants/vpnns@PROFILE.service to the template,
 * with an absolute target, as `systemctl enable` does. A link to another target is replaced, but
 * a file that is no link is left alone and reported.
 */
export async function enableProfile(dir: string, profile: string): Promise<{ link: string; target: string; outcome: WriteOutcome }> {
  const target = await requireTemplate(dir);
  const link = wantsLink(dir, profile);
  const existing = await lstat(link).catch(() => undefined);
  if (existing && !existing.isSymbolicLink()) {
    throw new VpnnsError(`cannot enable ${instanceName(profile)}: ${link} exists and is not a symbolic link; move it away first`);
  }
  if (existing && (await readlink(link)) === target) return { link, target, outcome: "unchanged" };

  await makeDirectory(join(dir, `${WANTED_BY}.wants`));
  logCommand(`ln -sf ${target} ${link}`);
  const temporary = `${link}.${process.pid}.tmp`;
  try {
    await rm(temporary, { force: true });
    await symlink(target, temporary);
    await rename(temporary, link);
  } catch (error) {
    await rm(temporary, { force: true });
    throw fileError(`link ${link} to ${target}`, error);
  }
  return { link, target, outcome: existing ? "updated" : "created" };
}

/** Remove a profile's wants link. Returns false when there was none. */
export async function disableProfile(dir: string, profile: string): Promise<{ link: string; removed: boolean }> {
  const link = wantsLink(dir, profile);
  const existing = await lstat(link).catch(() => undefined);
  if (!existing) return { link, removed: false };
  if (!existing.isSymbolicLink()) {
    throw new VpnnsError(`cannot disable ${instanceName(profile)}: ${link} is not a symbolic link, so vpnns did not make it; remove it by hand`);
  }
  logCommand(`rm ${link}`);
  await rm(link).catch((error: unknown) => {
    throw fileError(`remove ${link}`, error);
  });
  return { link, removed: true };
}

export function dropInPath(dir: string, service: string): string {
  return join(dir, `${service}.d`, DROP_IN_NAME);
}

/** Read the profile that a vpnns drop-in runs its service in from its NetworkNamespacePath=. */
function attachedProfile(text: string): string | undefined {
  return /^NetworkNamespacePath=\/run\/netns\/vpnns-(\S+)$/m.exec(text)?.[1];
}

export interface AttachResult {
  path: string;
  outcome: WriteOutcome;
  /** The profile the service was attached to before, when that was another one. */
  previousProfile?: string;
}

/** Write the drop-in that runs a service inside a profile, replacing one for another profile. */
export async function attachService(dir: string, service: string, profile: string): Promise<AttachResult> {
  await requireTemplate(dir);
  const path = dropInPath(dir, service);
  const old = await readFile(path, "utf8").catch(() => undefined);
  const before = old === undefined ? undefined : attachedProfile(old);
  await makeDirectory(join(dir, `${service}.d`));
  const outcome = await writeFileAtomic(path, renderDropIn(service, profile));
  return { path, outcome, ...(before !== undefined && before !== profile ? { previousProfile: before } : {}) };
}

/** Remove a service's vpnns drop-in, and its .d folder when nothing else is left in it. */
export async function detachService(dir: string, service: string): Promise<{ path: string; profile?: string; removed: boolean }> {
  const path = dropInPath(dir, service);
  const old = await readFile(path, "utf8").catch(() => undefined);
  if (old === undefined) return { path, removed: false };
  logCommand(`rm ${path}`);
  await rm(path).catch((error: unknown) => {
    throw fileError(`remove ${path}`, error);
  });
  await rmdir(join(dir, `${service}.d`)).catch(() => {
    // Other drop-ins are still in the folder: they are not vpnns's to remove.
  });
  const profile = attachedProfile(old);
  return { path, removed: true, ...(profile !== undefined ? { profile } : {}) };
}
