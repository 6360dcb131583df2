/** Option parsing shared by several commands. */
import { InvalidArgumentError, Option, type Command } from "commander";

export function addVerboseOption(command: Command): Command {
  return command.option("-v, --verbose", "print each state-changing command on stderr as it runs");
}

/** Parse a number of seconds into milliseconds, for --handshake-timeout. */
export function parseSeconds(value: string): number {
  const seconds = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) {
    throw new InvalidArgumentError(`expected a number of seconds from 0.1 to 3600, got ${JSON.stringify(value)}`);
  }
  return Math.round(seconds * 1000);
}

/** Options that bring a profile up, shared by `up` and `run`. */
export function addUpOptions(command: Command): Command {
  return command
    .addOption(
      new Option("--handshake-timeout <seconds>", "how long to wait for the first WireGuard handshake, in seconds")
        .argParser(parseSeconds)
        .default(5000, "5"),
    )
    .option("--no-wait", "do not wait for the first handshake");
}

export interface UpFlags {
  handshakeTimeout: number;
  wait: boolean;
}

export function handshakeTimeoutMs(flags: UpFlags): number {
  return flags.wait ? flags.handshakeTimeout : 0;
}
