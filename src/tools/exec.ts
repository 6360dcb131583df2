/**
 * The one runner for external commands. Every call passes an argument array (never a shell),
 * runs with LC_ALL=C so output parses the same everywhere, and turns a failure into a CommandError
 * that keeps the intent, the command line, the exit code and the tool's stderr.
 */
import { execa } from "execa";
import { existsSync } from "node:fs";
import { CommandError, VpnnsError } from "../core/errors.js";
import { logCommand } from "../core/log.js";

export interface RunOptions {
  /** Purpose of the command, as it reads after "failed to", for example "create namespace vpnns-home". */
  intent: string;
  /** Text written to the command's stdin: the only way secrets reach a command. */
  input?: string;
  /** Whether the command changes system state, so verbose output shows it. Queries stay quiet. */
  mutates?: boolean;
  /** Return a failed result instead of throwing. */
  allowFailure?: boolean;
  /** Variables added to the environment. */
  env?: Record<string, string>;
  /** Milliseconds before the command is killed. */
  timeout?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  failed: boolean;
}

/** Format an argument array the way a shell user would type it, for logs and error messages. */
export function formatCommand(argv: readonly string[]): string {
  return argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`)).join(" ");
}

const INSTALL_HINTS: Record<string, string> = {
  ip: "install iproute2",
  wg: "install wireguard-tools",
  "wireguard-go": "install wireguard-go",
  nft: "install nftables",
  "iptables-restore": "install iptables",
  "ip6tables-restore": "install iptables",
  setpriv: "install util-linux",
};

export async function run(argv: readonly string[], options: RunOptions): Promise<RunResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error("run() needs a command");
  const commandLine = formatCommand(argv);
  if (options.mutates) logCommand(commandLine);

  const result = await execa(file, args, {
    input: options.input ?? "",
    reject: false,
    stripFinalNewline: false,
    env: { LC_ALL: "C", ...options.env },
    timeout: options.timeout,
  });

  if (result.code === "ENOENT" && !existsSync(process.cwd())) {
    throw new VpnnsError(`failed to ${options.intent}: the working folder ${process.cwd()} no longer exists; run vpnns from another folder`);
  }
  if (result.code === "ENOENT") {
    const hint = INSTALL_HINTS[file] ? `; ${INSTALL_HINTS[file]}` : "";
    throw new VpnnsError(`failed to ${options.intent}: command not found: ${file}${hint}`);
  }
  const exitCode = result.exitCode ?? 1;
  const outcome = { stdout: String(result.stdout), stderr: String(result.stderr), exitCode, failed: result.failed };
  if (!result.failed || options.allowFailure) return outcome;

  const stderr = result.timedOut ? `timed out after ${options.timeout} ms` : outcome.stderr;
  throw new CommandError({ intent: options.intent, command: commandLine, exitCode: result.exitCode, stderr });
}

/** Check whether a program is on PATH, without running it. */
export async function hasCommand(name: string): Promise<boolean> {
  const { access, constants } = await import("node:fs/promises");
  const { delimiter, join } = await import("node:path");
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    try {
      await access(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // Not in this folder: try the next one.
    }
  }
  return false;
}
