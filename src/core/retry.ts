/**
 * Retrying `vpnns up` while the endpoint cannot be reached yet, as at boot before the uplink or DNS
 * works. Only a missing handshake and a failed endpoint name resolution are retried: each failed
 * attempt has already unwound its setup, so the next one starts from nothing.
 */
import { constants } from "node:os";
import type { Profile } from "../profile/types.js";
import { CommandError, VpnnsError } from "./errors.js";
import { info } from "./log.js";
import { up, type UpOptions, type UpResult } from "./launcher.js";

/** Delay before the second attempt. Each later delay doubles, up to MAX_RETRY_DELAY_MS. */
export const FIRST_RETRY_DELAY_MS = 1000;
export const MAX_RETRY_DELAY_MS = 30_000;

/**
 * Start of the message of the error that waitForHandshake (handshake.ts) throws on a timeout.
 * NOTE: the message is matched as text, because handshake.ts throws a plain VpnnsError. The test
 * test/unit/retry.test.ts runs the real waitForHandshake, so a reworded message fails it.
 */
const NO_HANDSHAKE = /^no WireGuard handshake with /;

/**
 * getaddrinfo(3) messages that `wg setconf` prints when an endpoint name does not resolve, as
 * "MESSAGE: `host:port'". The list contains the gai_strerror texts of glibc and musl.
 */
const NAME_RESOLUTION_FAILURE =
  /(Temporary failure in name resolution|Name or service not known|No address associated with hostname|Non-recoverable failure in name resolution|Name does not resolve): `/;

/** Return the reason to retry when a later attempt may succeed, or undefined when the error is final. */
export function retryableReason(error: unknown): string | undefined {
  if (error instanceof CommandError) {
    const isSetconf = error.command.startsWith("wg setconf ");
    if (isSetconf && NAME_RESOLUTION_FAILURE.test(error.stderr)) {
      const lines = error.stderr.split("\n").filter((candidate) => NAME_RESOLUTION_FAILURE.test(candidate));
      return `endpoint name resolution failed: ${(lines.pop() ?? "").trim()}`;
    }
    return undefined;
  }
  if (error instanceof VpnnsError && NO_HANDSHAKE.test(error.message)) return error.message;
  return undefined;
}

/** Time source and wait, replaceable in tests. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export interface RetryOptions {
  /** Milliseconds from the first attempt after which no new attempt starts. */
  retryForMs: number;
  /** The attempted action as it reads after "failed to", such as "bring up profile work". */
  action: string;
  clock?: Clock;
  /** Receives one line per failed attempt that is retried. */
  log?: (message: string) => void;
}

/**
 * Run attempt() until it succeeds, throws an error that retryableReason() calls final, or
 * options.retryForMs have passed. The delay between attempts starts at 1 s and doubles up to 30 s,
 * and the last delay is cut short so that one attempt starts when the time is spent. That attempt
 * can run past the deadline by its own length. Throws a VpnnsError with exit code 1 when the time
 * is spent, and rethrows a final error, or one from clock.sleep(), unchanged.
 */
export async function retryUntil<T>(attempt: () => Promise<T>, options: RetryOptions): Promise<T> {
  const clock = options.clock ?? systemClock;
  const log = options.log ?? info;
  const start = clock.now();
  const deadline = start + options.retryForMs;
  let delay = FIRST_RETRY_DELAY_MS;
  for (let count = 1; ; count += 1) {
    try {
      return await attempt();
    } catch (error) {
      const reason = retryableReason(error);
      if (reason === undefined) throw error;
      const now = clock.now();
      if (now >= deadline) {
        const attempts = count === 1 ? "1 attempt" : `${count} attempts`;
        const spent = `${attempts} in ${formatSeconds(now - start)} s (retry time ${formatSeconds(options.retryForMs)} s)`;
        throw new VpnnsError(`failed to ${options.action} after ${spent}: ${reason}`, { cause: error });
      }
      const wait = Math.min(delay, deadline - now);
      const next = new Date(now + wait).toISOString();
      log(`failed to ${options.action} (attempt ${count}): ${reason}; next attempt in ${formatSeconds(wait)} s, at ${next}`);
      await clock.sleep(wait);
      delay = Math.min(delay * 2, MAX_RETRY_DELAY_MS);
    }
  }
}

function formatSeconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}

/** Signals that end the wait between attempts, as they interrupt a setup in launcher.ts. */
const INTERRUPTING_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * Return a clock whose sleep rejects with a VpnnsError on SIGINT, SIGTERM or SIGHUP, with exit code
 * 128 + the signal number, so that `systemctl stop` during the retries ends vpnns at once.
 */
export function interruptibleClock(profile: string): Clock {
  return {
    now: () => Date.now(),
    sleep: (ms) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          stopWatching();
          resolve();
        }, ms);
        const onSignal = (signal: NodeJS.Signals): void => {
          stopWatching();
          reject(interruptedError(profile, signal));
        };
        const stopWatching = (): void => {
          clearTimeout(timer);
          for (const signal of INTERRUPTING_SIGNALS) process.off(signal, onSignal);
        };
        for (const signal of INTERRUPTING_SIGNALS) process.on(signal, onSignal);
      }),
  };
}

function interruptedError(profile: string, signal: NodeJS.Signals): VpnnsError {
  const message = `retries of profile ${profile} interrupted by ${signal} while waiting for the next attempt; nothing is set up`;
  return new VpnnsError(message, { exitCode: 128 + constants.signals[signal] });
}

/**
 * Bring a profile up as `up` does, retrying for retryForMs while the endpoint is unreachable or its
 * name does not resolve. `wg setconf` would otherwise retry a temporary resolution failure itself,
 * 15 times over about 70 s (wireguard-tools 1.0.20210914), so WG_ENDPOINT_RESOLUTION_RETRIES=0
 * makes it fail at once and leaves the waiting to this loop, which logs each attempt.
 */
export async function upWithRetry(profile: Profile, options: UpOptions & { retryForMs: number }): Promise<UpResult> {
  const previous = process.env.WG_ENDPOINT_RESOLUTION_RETRIES;
  process.env.WG_ENDPOINT_RESOLUTION_RETRIES = "0";
  // A signal between an attempt's end and the next sleep would otherwise find no listener and kill
  // vpnns outright: record it for the whole loop, and let the next sleep end at once.
  let pending: NodeJS.Signals | undefined;
  const record = (signal: NodeJS.Signals): void => {
    pending ??= signal;
  };
  for (const signal of INTERRUPTING_SIGNALS) process.on(signal, record);
  const clock = interruptibleClock(profile.name);
  const guardedClock: Clock = {
    now: clock.now,
    sleep: (ms) => (pending === undefined ? clock.sleep(ms) : Promise.reject(interruptedError(profile.name, pending))),
  };
  try {
    return await retryUntil(() => up(profile, { handshakeTimeoutMs: options.handshakeTimeoutMs }), {
      retryForMs: options.retryForMs,
      action: `bring up profile ${profile.name}`,
      clock: guardedClock,
    });
  } finally {
    for (const signal of INTERRUPTING_SIGNALS) process.off(signal, record);
    if (previous === undefined) delete process.env.WG_ENDPOINT_RESOLUTION_RETRIES;
    else process.env.WG_ENDPOINT_RESOLUTION_RETRIES = previous;
  }
}
