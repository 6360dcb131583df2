/**
 * Running an app inside a profile's namespace: through `ip netns exec`, which applies the
 * /etc/netns files, and setpriv, which drops to the target user with that user's groups.
 */
import { execa } from "execa";
import { accessSync, constants } from "node:fs";
import { constants as osConstants } from "node:os";
import { delimiter, join } from "node:path";
import { netnsExec } from "../tools/ip.js";
import { formatCommand } from "../tools/exec.js";
import { logCommand } from "./log.js";
import { VpnnsError } from "./errors.js";
import type { TargetUser } from "./user.js";

/** Variables that a desktop app needs and that survive the switch to the target user. */
export const DESKTOP_VARIABLES = [
  "DISPLAY",
  "WAYLAND_DISPLAY",
  "XAUTHORITY",
  "XDG_RUNTIME_DIR",
  "XDG_DATA_HOME",
  "XDG_DATA_DIRS",
  "XDG_SESSION_TYPE",
  "XDG_CURRENT_DESKTOP",
  "DBUS_SESSION_BUS_ADDRESS",
  "PULSE_SERVER",
  "LANG",
  "LANGUAGE",
  "TERM",
  "COLORTERM",
];

/** Exit code of a shell for a command that is not found, used when the app's program does not exist. */
export const EXIT_COMMAND_NOT_FOUND = 127;

/** Build the argument array that starts the command in the namespace as the user. */
export function planAppCommand(namespace: string, user: TargetUser, command: string[]): string[] {
  if (user.uid === 0) return [...netnsExec(namespace), ...command];
  return [...netnsExec(namespace), "setpriv", `--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "--", ...command];
}

/** Build the app's environment: the caller's, without sudo's variables, with the target user's identity. */
export function appEnvironment(user: TargetUser, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && !key.startsWith("SUDO_")) result[key] = value;
  }
  Object.assign(result, { HOME: user.home, USER: user.name, LOGNAME: user.name, SHELL: user.shell });
  result.PATH ??= "/usr/local/bin:/usr/bin:/bin";
  return result;
}

/** Find a program on PATH the way execvp does; undefined when it is not there. */
export function findProgram(program: string, path: string): string | undefined {
  const candidates = program.includes("/") ? [program] : path.split(delimiter).filter(Boolean).map((dir) => join(dir, program));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not executable here: try the next folder.
    }
  }
  return undefined;
}

/** Signals passed on to the app; it ends as it chooses and vpnns exits with its status. */
const FORWARDED_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * Start the app with the caller's stdin, stdout and stderr, forward SIGINT, SIGTERM and SIGHUP,
 * and return its exit code, or 128 + N when signal N ended it. The app's environment is built from
 * `env`, by default vpnns' own.
 */
export async function runApp(options: { namespace: string; user: TargetUser; command: string[]; env?: NodeJS.ProcessEnv }): Promise<number> {
  const env = appEnvironment(options.user, options.env);
  const [program = ""] = options.command;
  if (findProgram(program, env.PATH ?? "") === undefined) {
    throw new VpnnsError(`command not found: ${program}; check the name or give its full path`, { exitCode: EXIT_COMMAND_NOT_FOUND });
  }
  const argv = planAppCommand(options.namespace, options.user, options.command);
  logCommand(formatCommand(argv));

  const [file = "", ...args] = argv;
  const app = execa(file, args, { stdio: "inherit", env, extendEnv: false, reject: false, forceKillAfterDelay: false });
  // NOTE: a Ctrl-C in a terminal signals both vpnns and the app, so the app receives SIGINT twice.
  const forward = (signal: NodeJS.Signals) => {
    app.kill(signal);
  };
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
  try {
    const result = await app;
    if (result.signal) return 128 + (osConstants.signals[result.signal] ?? 0);
    return result.exitCode ?? 1;
  } finally {
    for (const signal of FORWARDED_SIGNALS) process.off(signal, forward);
  }
}
