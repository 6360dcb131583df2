/** Exit codes of the vpnns command line, documented in the README. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A failure that vpnns reports as one line and an exit code. */
export class VpnnsError extends Error {
  readonly exitCode: number;

  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "VpnnsError";
    this.exitCode = options.exitCode ?? EXIT_FAILURE;
  }
}

/** Invalid input from the user: a bad flag, profile name or configuration file (exit code 2). */
export class UsageError extends VpnnsError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { ...options, exitCode: EXIT_USAGE });
    this.name = "UsageError";
  }
}

/** An external command that failed, with its intent, command line, exit code and stderr. */
export class CommandError extends VpnnsError {
  readonly command: string;
  readonly stderr: string;
  readonly commandExitCode: number | undefined;

  constructor(options: { intent: string; command: string; exitCode?: number; stderr: string; cause?: unknown }) {
    const status = options.exitCode === undefined ? "failed" : `exited with code ${options.exitCode}`;
    const detail = options.stderr.trim() === "" ? "" : `: ${options.stderr.trim()}`;
    super(`failed to ${options.intent}: '${options.command}' ${status}${detail}`, { cause: options.cause });
    this.name = "CommandError";
    this.command = options.command;
    this.stderr = options.stderr;
    this.commandExitCode = options.exitCode;
  }
}
