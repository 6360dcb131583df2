import { describe, expect, it, vi } from "vitest";
import { CommandError, UsageError, VpnnsError } from "../../src/core/errors.js";
import { interruptibleClock, retryableReason, retryUntil, type Clock } from "../../src/core/retry.js";
import { waitForHandshake } from "../../src/core/handshake.js";
import type { Profile } from "../../src/profile/types.js";

// The handshake wait runs for real against a WireGuard interface that never completes a handshake.
vi.mock("../../src/tools/wg.js", () => ({
  setPersistentKeepalive: async () => {},
  readLatestHandshakes: async () => new Map([["peer", 0]]),
}));

const PROFILE: Profile = {
  name: "work",
  interface: { privateKey: "key", addresses: ["192.0.2.10/32"], dns: [], dnsSearch: [] },
  peers: [{ publicKey: "peer", allowedIPs: ["0.0.0.0/0"], endpoint: "198.51.100.7:51820" }],
};

/** A clock that advances only when the code under test sleeps, or when a test attempt moves it. */
class FakeClock implements Clock {
  time = Date.parse("2030-01-01T00:00:00.000Z");
  readonly sleeps: number[] = [];

  now(): number {
    return this.time;
  }

  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    this.time += ms;
  }
}

function resolutionError(): CommandError {
  return new CommandError({
    intent: "configure WireGuard interface vns-work",
    command: "wg setconf vns-work /run/vpnns/work/wg-setconf.conf",
    exitCode: 1,
    stderr: "Temporary failure in name resolution: `vpn.example.net:51820'\nConfiguration parsing error\n",
  });
}

async function realHandshakeTimeout(): Promise<unknown> {
  return waitForHandshake({ profile: PROFILE, namespace: "vpnns-work", interfaceName: "vns-work", backend: "kernel", timeoutMs: 1, isInterrupted: () => false }).then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe("retryable failures", () => {
  it("include the real handshake timeout", async () => {
    const error = await realHandshakeTimeout();
    expect(error).toBeInstanceOf(VpnnsError);
    expect(retryableReason(error)).toBe((error as Error).message);
  });

  it("include a failed name resolution", () => {
    expect(retryableReason(resolutionError())).toBe("endpoint name resolution failed: Temporary failure in name resolution: `vpn.example.net:51820'");
  });

  it.each([
    "Name or service not known: `vpn.example.net:51820'",
    "No address associated with hostname: `vpn.example.net:51820'",
    "Name does not resolve: `vpn.example.net:51820'",
  ])("include %s", (stderr) => {
    const error = new CommandError({ intent: "configure", command: "wg setconf vns-work /f", exitCode: 1, stderr });
    expect(retryableReason(error)).toBe(`endpoint name resolution failed: ${stderr}`);
  });

  it("report the last of wg's own retries", () => {
    const stderr = "Temporary failure in name resolution: `a:1'. Trying again in 1.00 seconds...\nName or service not known: `a:1'\n";
    const error = new CommandError({ intent: "configure", command: "wg setconf vns-work /f", exitCode: 1, stderr });
    expect(retryableReason(error)).toBe("endpoint name resolution failed: Name or service not known: `a:1'");
  });

  it("exclude other command failures", () => {
    const other = new CommandError({ intent: "create", command: "ip link add dev vns-work type wireguard", exitCode: 2, stderr: "RTNETLINK answers: File exists" });
    const sameTextOtherCommand = new CommandError({ intent: "x", command: "ip netns add x", exitCode: 1, stderr: "Name or service not known: `x'" });
    expect(retryableReason(other)).toBeUndefined();
    expect(retryableReason(sameTextOtherCommand)).toBeUndefined();
  });

  it("exclude usage errors and interruptions", () => {
    expect(retryableReason(new UsageError("profile work not found"))).toBeUndefined();
    expect(retryableReason(new VpnnsError("setup of profile work interrupted by SIGTERM", { exitCode: 143 }))).toBeUndefined();
    expect(retryableReason(new Error("no WireGuard handshake with x"))).toBeUndefined();
  });
});

describe("retryUntil", () => {
  it("returns the first success", async () => {
    const clock = new FakeClock();
    const lines: string[] = [];
    const result = await retryUntil(async () => "up", { retryForMs: 10_000, action: "bring up profile work", clock, log: (line) => lines.push(line) });
    expect(result).toBe("up");
    expect(lines).toEqual([]);
    expect(clock.sleeps).toEqual([]);
  });

  it("backs off from 1 s doubling to 30 s", async () => {
    const clock = new FakeClock();
    let attempts = 0;
    const result = await retryUntil(
      async () => {
        attempts += 1;
        if (attempts < 9) throw resolutionError();
        return attempts;
      },
      { retryForMs: 600_000, action: "bring up profile work", clock, log: () => {} },
    );
    expect(result).toBe(9);
    expect(clock.sleeps).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  });

  it("logs one line per failed attempt", async () => {
    const clock = new FakeClock();
    const lines: string[] = [];
    let attempts = 0;
    await retryUntil(
      async () => {
        attempts += 1;
        if (attempts < 3) throw resolutionError();
      },
      { retryForMs: 60_000, action: "bring up profile work", clock, log: (line) => lines.push(line) },
    );
    expect(lines).toEqual([
      "failed to bring up profile work (attempt 1): endpoint name resolution failed: Temporary failure in name resolution: " +
        "`vpn.example.net:51820'; next attempt in 1 s, at 2030-01-01T00:00:01.000Z",
      "failed to bring up profile work (attempt 2): endpoint name resolution failed: Temporary failure in name resolution: " +
        "`vpn.example.net:51820'; next attempt in 2 s, at 2030-01-01T00:00:03.000Z",
    ]);
  });

  it("fails with exit code 1 once the time is spent", async () => {
    const clock = new FakeClock();
    const lines: string[] = [];
    let attempts = 0;
    const failure = retryUntil(
      async () => {
        attempts += 1;
        clock.time += 500;
        throw resolutionError();
      },
      { retryForMs: 5000, action: "bring up profile work", clock, log: (line) => lines.push(line) },
    );
    await expect(failure).rejects.toThrow(
      "failed to bring up profile work after 4 attempts in 5.5 s (retry time 5 s): endpoint name resolution failed: " +
        "Temporary failure in name resolution: `vpn.example.net:51820'",
    );
    await expect(failure).rejects.toMatchObject({ exitCode: 1 });
    // Attempts at 0, 1.5, 4 and 5 s: the third delay is cut to 0.5 s so the last attempt starts at the deadline.
    expect(clock.sleeps).toEqual([1000, 2000, 500]);
    expect(lines).toHaveLength(3);
    expect(attempts).toBe(4);
  });

  it("rethrows a final error at once", async () => {
    const clock = new FakeClock();
    const final = new UsageError("profile work not found");
    let attempts = 0;
    const failure = retryUntil(
      async () => {
        attempts += 1;
        if (attempts === 1) throw resolutionError();
        throw final;
      },
      { retryForMs: 60_000, action: "bring up profile work", clock, log: () => {} },
    );
    await expect(failure).rejects.toBe(final);
    expect(attempts).toBe(2);
  });

  it("makes one attempt with no retry time", async () => {
    const clock = new FakeClock();
    let attempts = 0;
    const failure = retryUntil(
      async () => {
        attempts += 1;
        throw resolutionError();
      },
      { retryForMs: 0, action: "bring up profile work", clock, log: () => {} },
    );
    await expect(failure).rejects.toThrow("failed to bring up profile work after 1 attempt in 0 s (retry time 0 s): endpoint name resolution failed");
    expect(attempts).toBe(1);
  });
});

describe("interruptibleClock", () => {
  it("sleep ends on SIGTERM", async () => {
    const before = process.listenerCount("SIGTERM");
    const sleeping = interruptibleClock("work").sleep(60_000);
    // Calls only the clock's own listener, because emitting the signal would also reach vitest's.
    const listener = process.listeners("SIGTERM").at(-1) as (signal: NodeJS.Signals) => void;
    listener("SIGTERM");
    await expect(sleeping).rejects.toThrow(
      "retries of profile work interrupted by SIGTERM while waiting for the next attempt; nothing is set up",
    );
    await expect(sleeping).rejects.toMatchObject({ exitCode: 143 });
    expect(process.listenerCount("SIGTERM")).toBe(before);
  });

  it("sleep removes its listeners", async () => {
    const before = ["SIGINT", "SIGTERM", "SIGHUP"].map((signal) => process.listenerCount(signal));
    await interruptibleClock("work").sleep(5);
    expect(["SIGINT", "SIGTERM", "SIGHUP"].map((signal) => process.listenerCount(signal))).toEqual(before);
  });
});
