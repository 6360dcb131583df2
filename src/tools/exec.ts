/**
 * The one runner for external commands. Every call passes an argument array (never a shell),
 * runs with LC_ALL=C so output parses the same everywhere, and turns a failure into a CommandError
 * that keeps the intent, the command line, the exit code and the tool's stderr.
 */
import { execa } from "execa";
import { existsSync } from "node:fs";
import { mkdir, open, rm, rmdir, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { CommandError, VpnnsError } from "../core/errors.js";
import { logCommand } from "../core/log.js";
import { stateDir } from "../core/paths.js";

export interface RunOptions {
  /** Purpose of the command, as it reads after "failed to", for example "create namespace vpnns-home". */
  intent: string;
  /** Text written to the command's stdin, through a pipe: never a secret (see secretOutput). */
  input?: string;
  /** Whether the command changes system state, so verbose output shows it. Queries stay quiet. */
  mutates?: boolean;
  /** Return a failed result instead of throwing. */
  allowFailure?: boolean;
  /** Variables added to the environment. */
  env?: Record<string, string>;
  /** Milliseconds before the command is killed. */
  timeout?: number;
  /**
   * The command prints secrets. Its stdout and stderr go to unnamed 0600 files in the 0700 state
   * folder instead of pipes, where NODE_DEBUG=stream would print their first bytes, and they are
   * never logged, not even with NODE_DEBUG=execa.
   */
  secretOutput?: boolean;
  /**
   * Keys that the command reads from a file, which it may quote on failure, as wg quotes a line it
   * rejects. They imply secretOutput, and each is replaced by "(hidden)" in the returned stderr
   * and in the message of a CommandError.
   */
  secrets?: readonly string[];
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
  nsenter: "install util-linux",
  taskset: "install util-linux",
  mount: "install mount",
  umount: "install mount",
};

export async function run(argv: readonly string[], options: RunOptions): Promise<RunResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error("run() needs a command");
  const commandLine = formatCommand(argv);
  if (options.mutates) logCommand(commandLine);

  const secretOutput = options.secretOutput === true || options.secrets !== undefined;
  // A state folder made only for these files goes again, so a command that fails leaves nothing.
  const madeStateDir = secretOutput && !existsSync(stateDir());
  const outputFiles = secretOutput ? [await openSecretFile(), await openSecretFile()] : [];
  let result;
  try {
    const [stdoutFile, stderrFile] = outputFiles;
    result = await execa(file, args, {
      input: options.input ?? "",
      // A number passes that descriptor of this process to the child, with no pipe in between.
      stdout: stdoutFile === undefined ? "pipe" : (stdoutFile.fd as unknown as "pipe"),
      stderr: stderrFile === undefined ? "pipe" : (stderrFile.fd as unknown as "pipe"),
      reject: false,
      stripFinalNewline: false,
      env: { LC_ALL: "C", ...options.env },
      timeout: options.timeout,
      ...(secretOutput ? { verbose: "none" as const } : {}),
    });
    if (stdoutFile !== undefined) result.stdout = await readWhole(stdoutFile);
    if (stderrFile !== undefined) result.stderr = await readWhole(stderrFile);
  } finally {
    for (const outputFile of outputFiles) await outputFile.close();
    if (madeStateDir) await rmdir(stateDir()).catch(() => {});
  }

  if (result.code === "ENOENT" && !existsSync(process.cwd())) {
    throw new VpnnsError(`failed to ${options.intent}: the working folder ${process.cwd()} no longer exists; run vpnns from another folder`);
  }
  if (result.code === "ENOENT") {
    const hint = INSTALL_HINTS[file] ? `; ${INSTALL_HINTS[file]}` : "";
    throw new VpnnsError(`failed to ${options.intent}: command not found: ${file}${hint}`);
  }
  const exitCode = result.exitCode ?? 1;
  const outcome = { stdout: String(result.stdout), stderr: hideSecrets(String(result.stderr), options.secrets), exitCode, failed: result.failed };
  if (!result.failed || options.allowFailure) return outcome;

  const stderr = result.timedOut ? `timed out after ${options.timeout} ms` : outcome.stderr;
  throw new CommandError({ intent: options.intent, command: commandLine, exitCode: result.exitCode, stderr });
}

/** Replace every occurrence of each secret with "(hidden)". */
export function hideSecrets(text: string, secrets: readonly string[] = []): string {
  let hidden = text;
  for (const secret of secrets) {
    if (secret !== "") hidden = hidden.replaceAll(secret, "(hidden)");
  }
  return hidden;
}

/** Files opened by openSecretFile so far, which makes each name new within this process. */
let secretFileCount = 0;

/**
 * Create an empty 0600 file for a command's secret output in the 0700 state folder, and remove its
 * name at once, so the output is reachable only through the returned descriptor.
 */
async function openSecretFile(): Promise<FileHandle> {
  await mkdir(stateDir(), { recursive: true, mode: 0o700 });
  // The name only has to be new: only the folder's owner can add files to it, and "wx+" never
  // opens a file that exists. So the pid, a count and the clock serve, without the milliseconds
  // that loading node:crypto for a random name costs.
  secretFileCount += 1;
  const path = join(stateDir(), `.output-${process.pid}-${secretFileCount}-${process.hrtime.bigint()}`);
  const handle = await open(path, "wx+", 0o600);
  await rm(path, { force: true });
  return handle;
}

/** Read a file from its start: the child's writes moved the offset that the descriptor shares. */
async function readWhole(handle: FileHandle): Promise<string> {
  const { size } = await handle.stat();
  const buffer = Buffer.alloc(size);
  let offset = 0;
  while (offset < size) {
    const { bytesRead } = await handle.read(buffer, offset, size - offset, offset);
    if (bytesRead === 0) break;
    offset += bytesRead;
  }
  return buffer.subarray(0, offset).toString("utf8");
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
