/**
 * Reading and writing desktop entries (the Desktop Entry Specification of freedesktop.org):
 * the [Desktop Entry] group, string escapes, and the quoting and field codes of the Exec key.
 *
 * Exec arguments are kept in "field-code form": the text after quoting is undone, in which "%%"
 * is a literal "%" and "%u", "%F" and so on are field codes, so an argument can be written back
 * without expanding or losing them.
 */

/** The keys and raw values of a desktop entry's [Desktop Entry] group, in file order. */
export type DesktopEntryGroup = Map<string, string>;

/** Parse the [Desktop Entry] group; keys such as "Name[de]" keep their locale, values keep their escapes. */
export function parseDesktopEntry(text: string): DesktopEntryGroup {
  const group: DesktopEntryGroup = new Map();
  let inEntryGroup = false;
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("[")) {
      inEntryGroup = line === "[Desktop Entry]";
      continue;
    }
    const equals = line.indexOf("=");
    if (!inEntryGroup || equals <= 0) continue;
    const key = line.slice(0, equals).trim();
    // A key that appears twice is invalid; the first one wins, as in GLib's key file parser.
    if (!group.has(key)) group.set(key, line.slice(equals + 1).trim());
  }
  return group;
}

/** Undo the escapes of a string value: \s, \n, \t, \r and \\. Other backslashes stay, for the Exec quoting rules. */
export function unescapeValue(raw: string): string {
  return raw.replace(/\\([sntr\\])/g, (_match, code: string) => ({ s: " ", n: "\n", t: "\t", r: "\r", "\\": "\\" })[code]!);
}

/** Escape a string value for a desktop entry: backslash, newline, tab, carriage return, and a leading space. */
export function escapeValue(value: string): string {
  const escaped = value.replace(/[\\\n\t\r]/g, (character) => ({ "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r" })[character]!);
  return escaped.startsWith(" ") ? `\\s${escaped.slice(1)}` : escaped;
}

/** Characters that the specification reserves: an argument that contains one must be quoted. */
const RESERVED = /[ \t\n"'\\><~|&;$*?#()`]/;

/** Characters that take a backslash inside a quoted argument. */
const ESCAPED_IN_QUOTES = /["`$\\]/g;

/** A field code argument on its own, such as %u or %F. */
const FIELD_CODE = /^%[a-zA-Z]$/;

/** Field codes that a launcher keeps: the files or URLs to open. Others describe the original entry or are deprecated. */
const KEPT_FIELD_CODES = new Set(["%f", "%F", "%u", "%U"]);

/** Write literal text in field-code form, so that a "%" in it is not taken for a field code. */
export function literalArgument(text: string): string {
  return text.replaceAll("%", "%%");
}

/**
 * Split an Exec value (with string escapes already undone) into arguments in field-code form.
 * Returns undefined when a quote is not closed.
 */
export function splitExec(value: string): string[] | undefined {
  const args: string[] = [];
  let current: string | undefined;
  let quoted = false;
  for (let index = 0; index < value.length; index++) {
    const character = value[index]!;
    if (quoted) {
      if (character === '"') {
        quoted = false;
      } else if (character === "\\" && index + 1 < value.length && '"`$\\'.includes(value[index + 1]!)) {
        current += value[++index]!;
      } else {
        current += character;
      }
    } else if (character === " " || character === "\t" || character === "\n") {
      if (current !== undefined) args.push(current);
      current = undefined;
    } else if (character === '"') {
      quoted = true;
      current ??= "";
    } else if (character === "\\" && index + 1 < value.length) {
      // A backslash outside quotes is invalid; it is read as escaping the next character.
      current = (current ?? "") + value[++index]!;
    } else {
      current = (current ?? "") + character;
    }
  }
  if (quoted) return undefined;
  if (current !== undefined) args.push(current);
  return args;
}

/** Quote one argument in field-code form for an Exec value, when it is empty or contains a reserved character. */
export function quoteExecArgument(arg: string): string {
  if (FIELD_CODE.test(arg)) return arg;
  if (arg !== "" && !RESERVED.test(arg)) return arg;
  return `"${arg.replace(ESCAPED_IN_QUOTES, (character) => `\\${character}`)}"`;
}

/** Build an Exec value from arguments in field-code form, with the string escapes applied. */
export function formatExec(args: readonly string[]): string {
  return escapeValue(args.map(quoteExecArgument).join(" "));
}

/**
 * Remove the arguments that contain a field code other than %f, %F, %u and %U: %i, %c and %k
 * expand to the icon, name and file of the launcher, not of the original entry, and the others are
 * deprecated.
 */
export function keepFileFieldCodes(args: readonly string[]): string[] {
  return args.filter((arg) => {
    const codes = arg.replaceAll("%%", "").match(/%[a-zA-Z]/g) ?? [];
    return codes.every((code) => KEPT_FIELD_CODES.has(code));
  });
}

export interface LauncherOptions {
  profile: string;
  /** The app's name for a launcher without an original entry. */
  app: string;
  /** The command that starts vpnns, as literal text (an absolute path, maybe preceded by node). */
  vpnnsCommand: readonly string[];
  /** The app's command in field-code form: the original entry's Exec, or the app name. */
  appCommand: readonly string[];
  /** The app's own entry, when one was found. */
  original?: DesktopEntryGroup;
}

/**
 * Render the launcher: Type, Name (and its translations) with " (VPN: <profile>)" appended,
 * Icon, Terminal, MimeType and Categories of the original entry, and an Exec that runs the app's
 * command through `vpnns run --profile <profile> --`.
 */
export function renderLauncher(options: LauncherOptions): string {
  const { profile, original } = options;
  const exec = [...options.vpnnsCommand.map(literalArgument), "run", "--profile", profile, "--", ...keepFileFieldCodes(options.appCommand)];
  const lines = ["[Desktop Entry]", "Type=Application"];
  const suffix = ` (VPN: ${profile})`;
  const name = original?.get("Name");
  lines.push(`Name=${name !== undefined && name !== "" ? name : escapeValue(options.app)}${suffix}`);
  for (const [key, value] of original ?? []) {
    if (/^Name\[[^\]]+\]$/.test(key)) lines.push(`${key}=${value}${suffix}`);
  }
  for (const key of ["Icon", "Terminal", "MimeType", "Categories"]) {
    const value = original?.get(key);
    if (value !== undefined && value !== "") lines.push(`${key}=${value}`);
  }
  lines.push(`Exec=${formatExec(exec)}`, `X-Vpnns-Profile=${profile}`);
  return `${lines.join("\n")}\n`;
}
