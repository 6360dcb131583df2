import { mkdir } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { describeSystemError } from "../../src/cli/system-error.js";

/** Runs `action`, expects it to fail and returns the error. */
async function failure(action: () => Promise<unknown>): Promise<unknown> {
  return action().then(
    () => {
      throw new Error("expected the action to fail");
    },
    (error: unknown) => error,
  );
}

describe("describeSystemError", () => {
  it("names a file where a folder belongs", async () => {
    const error = describeSystemError(await failure(() => mkdir("/proc/self/status/locks", { recursive: true })));
    expect(error?.message).toMatch(/^failed to mkdir \/proc\/self\/status(\/locks)?: a part of the path is not a folder \(ENOTDIR\); check that VPNNS_CONFIG_DIR/);
    expect(error?.exitCode).toBe(2);
  });

  it("gives code 1 for other errors", async () => {
    const error = describeSystemError(await failure(() => mkdir("/proc/vpnns-test")));
    expect(error?.message).toMatch(/^failed to mkdir \/proc\/vpnns-test: /);
    expect(error?.exitCode).toBe(1);
  });

  it("ignores errors without a path", () => {
    expect(describeSystemError(new Error("something else"))).toBeUndefined();
    expect(describeSystemError("text")).toBeUndefined();
  });
});
