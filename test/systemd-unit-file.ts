/**
 * Reading systemd unit files in the tests: the entries of each section, and an Exec line split into
 * arguments as systemd 252 splits it, for the subset of the syntax that vpnns writes.
 */

export interface UnitEntry {
  section: string;
  key: string;
  value: string;
}

/** Parse a unit file into its entries in order. Throws on syntax that vpnns never writes. */
export function parseUnitFile(text: string): UnitEntry[] {
  const entries: UnitEntry[] = [];
  let section = "";
  for (const [index, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    if (line.endsWith("\\")) throw new Error(`line ${index + 1}: continuation lines are not supported: ${raw}`);
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    const equals = line.indexOf("=");
    if (equals <= 0 || section === "") throw new Error(`line ${index + 1}: expected KEY=VALUE inside a section: ${raw}`);
    entries.push({ section, key: line.slice(0, equals).trim(), value: line.slice(equals + 1).trim() });
  }
  return entries;
}

/** Return every value of a key in a section, in order. */
export function unitValues(entries: UnitEntry[], section: string, key: string): string[] {
  return entries.filter((entry) => entry.section === section && entry.key === key).map((entry) => entry.value);
}

/** Return the only value of a key in a section. Throws when there is none or more than one. */
export function unitValue(entries: UnitEntry[], section: string, key: string): string {
  const values = unitValues(entries, section, key);
  if (values.length !== 1) throw new Error(`expected one ${key}= in [${section}], found ${values.length}`);
  return values[0]!;
}

/**
 * Split an ExecStart= or ExecStop= value into argv: words split at spaces, double quotes group,
 * "%%" is "%", "%i" is the instance and "$$" is "$". Throws on prefixes, backslashes, single
 * quotes, other specifiers and variables, none of which vpnns writes.
 */
export function splitExecLine(value: string, instance: string): string[] {
  if (/^[@\-:+!]/.test(value)) throw new Error(`Exec prefixes are not supported: ${value}`);
  if (/['\\]/.test(value)) throw new Error(`single quotes and backslashes are not supported: ${value}`);
  const words: string[] = [];
  let word: string | undefined;
  let quoted = false;
  for (let i = 0; i < value.length; i += 1) {
    const char = value[i]!;
    if (char === '"') {
      quoted = !quoted;
      word ??= "";
    } else if (char === " " && !quoted) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (char === "%" || char === "$") {
      const next = value[i + 1];
      i += 1;
      if (next === char) word = (word ?? "") + char;
      else if (char === "%" && next === "i") word = (word ?? "") + instance;
      else throw new Error(`unsupported ${char}${next ?? ""} in: ${value}`);
    } else {
      word = (word ?? "") + char;
    }
  }
  if (quoted) throw new Error(`unterminated quote in: ${value}`);
  if (word !== undefined) words.push(word);
  return words;
}

/** Keys of systemd.exec(5) in systemd 252 that set up or configure a mount namespace of the service's own. */
export const MOUNT_NAMESPACE_KEYS = [
  "PrivateTmp",
  "PrivateMounts",
  "PrivateDevices",
  "ProtectSystem",
  "ProtectHome",
  "ProtectKernelTunables",
  "ProtectKernelModules",
  "ProtectKernelLogs",
  "ProtectControlGroups",
  "ProtectProc",
  "ProcSubset",
  "ReadWritePaths",
  "ReadOnlyPaths",
  "InaccessiblePaths",
  "ExecPaths",
  "NoExecPaths",
  "BindPaths",
  "BindReadOnlyPaths",
  "TemporaryFileSystem",
  "RootDirectory",
  "RootImage",
  "MountImages",
  "ExtensionImages",
  "ExtensionDirectories",
  "MountAPIVFS",
  "DynamicUser",
  "LogNamespace",
  "MountFlags",
];

/** Keys that put a service in a network namespace other than the host's. */
export const NETWORK_NAMESPACE_KEYS = ["PrivateNetwork", "NetworkNamespacePath", "JoinsNamespaceOf"];
