/**
 * The one runner for external commands. Every call passes an argument array (never a shell),
 * runs with LC_ALL=C so output parses the same everywhere, and turns a failure into a CommandError
 * that keeps the intent, the command line, the exit code and the tool's stderr. It spawns through
 * node:child_process, because loading execa costs each vpnns process about 150 ms and 17 MB
 * (measured with Node.js 20 on a 2-core AMD EPYC), more than the rest of a `vpnns run`.
 */
import { spawn } from "node:child_process";
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

  const result = await spawnCollect(file, args, { input: options.input ?? "", env: { ...process.env, LC_ALL: "C", ...options.env }, timeout: options.timeout });

  if (result.code === "ENOENT" && !existsSync(process.cwd())) {
    throw new VpnnsError(`failed to ${options.intent}: the working folder ${process.cwd()} no longer exists; run vpnns from another folder`);
  }
  if (result.code === "ENOENT") {
    const hint = INSTALL_HINTS[file] ? `; ${INSTALL_HINTS[file]}` : "";
    throw new VpnnsError(`failed to ${options.intent}: command not found: ${file}${hint}`);
  }
  const exitCode = result.exitCode ?? 1;
  const outcome = { stdout: result.stdout, stderr: result.stderr, exitCode, failed: result.failed };
  if (!result.failed || options.allowFailure) return outcome;

  const stderr = result.timedOut ? `timed out after ${options.timeout} ms` : outcome.stderr;
  throw new CommandError({ intent: options.intent, command: commandLine, exitCode: result.exitCode, stderr });
}

interface SpawnResult {
  stdout: string;
  stderr: string;
  /** Undefined when a signal ended the command or it did not start. */
  exitCode: number | undefined;
  failed: boolean;
  timedOut: boolean;
  /** The error code of a command that did not start, such as ENOENT. */
  code: string | undefined;
}

/** Run a program with stdin from `input`, and collect its output; never throws for the command's own failure. */
function spawnCollect(file: string, args: readonly string[], options: { input: string; env: NodeJS.ProcessEnv; timeout?: number }): Promise<SpawnResult> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { env: options.env, stdio: ["pipe", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let code: string | undefined;
    let timedOut = false;
    const timer =
      options.timeout === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill("SIGKILL");
          }, options.timeout);
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    // A command that exits without reading its input closes the pipe: that is its own business.
    child.stdin.on("error", () => {});
    child.stdin.end(options.input);
    child.on("error", (error: NodeJS.ErrnoException) => {
      code ??= error.code;
    });
    child.on("close", (exitCode: number | null) => {
      if (timer !== undefined) clearTimeout(timer);
      resolve({
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
        exitCode: exitCode ?? undefined,
        failed: exitCode !== 0 || code !== undefined || timedOut,
        timedOut,
        code,
      });
    });
  });
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
