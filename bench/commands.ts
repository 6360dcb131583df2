/**
 * Timed child processes. The elapsed time runs from just before spawn() to the child's exit, as
 * measured with performance.now() in this process. Every stderr line gets the time it arrived, so
 * the "[#] command" lines of `vpnns -v` mark when each step started.
 */
import { spawn } from "node:child_process";
import { performance } from "node:perf_hooks";

export interface TimedLine {
  /** Milliseconds from the spawn to the arrival of the line. */
  atMs: number;
  text: string;
}

export interface CommandResult {
  argv: readonly string[];
  /** Milliseconds from the spawn to the exit. */
  elapsedMs: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  stderrLines: TimedLine[];
}

export interface CommandOptions {
  /** The whole environment of the child. Defaults to this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Milliseconds before the child gets SIGKILL. */
  timeoutMs?: number;
  /** Called with the child's pid right after the spawn. */
  onSpawn?: (pid: number) => void;
}

const DEFAULT_TIMEOUT_MS = 60_000;

/** Runs a command with stdin closed and returns its output and timing. A failed exit is returned, not thrown. */
export function runTimed(argv: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error("runTimed() needs a command");
  return new Promise((resolve, reject) => {
    const stdout: Buffer[] = [];
    const stderrLines: TimedLine[] = [];
    let stderr = "";
    let partialLine = "";
    let exitedAtMs = 0;
    let timedOut = false;

    const start = performance.now();
    const child = spawn(file, args, { env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    if (child.pid !== undefined) options.onSpawn?.(child.pid);

    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      const atMs = performance.now() - start;
      stderr += chunk;
      const lines = (partialLine + chunk).split("\n");
      partialLine = lines.pop() ?? "";
      for (const text of lines) stderrLines.push({ atMs, text });
    });
    child.once("exit", () => {
      exitedAtMs = performance.now() - start;
    });
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`failed to start ${argv.join(" ")}: ${error.message}`));
    });
    child.once("close", (exitCode, signal) => {
      clearTimeout(timer);
      if (partialLine !== "") stderrLines.push({ atMs: exitedAtMs, text: partialLine });
      resolve({
        argv,
        elapsedMs: exitedAtMs,
        exitCode,
        signal,
        timedOut,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr,
        stderrLines,
      });
    });
  });
}

/** Describes how a command failed, with its stderr, for an error message. */
export function describeFailure(result: CommandResult): string {
  let how = `exited with ${result.exitCode}`;
  if (result.signal) how = `was ended by ${result.signal}`;
  if (result.timedOut) how = "timed out";
  const output = (result.stderr.trim() || result.stdout.trim()).split("\n").slice(-15).join("\n");
  return `${result.argv.join(" ")} ${how}${output ? `:\n${output}` : ""}`;
}

/** Runs a command like runTimed() and throws unless it exits with 0. */
export async function runChecked(argv: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  const result = await runTimed(argv, options);
  if (result.exitCode !== 0) throw new Error(describeFailure(result));
  return result;
}

/** Runs a command and returns its stdout, or undefined when it cannot run or fails. */
export async function readOutput(argv: readonly string[]): Promise<string | undefined> {
  try {
    const result = await runTimed(argv, { timeoutMs: 10_000 });
    return result.exitCode === 0 ? result.stdout : undefined;
  } catch {
    return undefined;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
