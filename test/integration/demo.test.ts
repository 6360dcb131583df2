/** `vpnns demo` end to end: it nests its own sandbox inside the test sandbox. */
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI, SKIP_REASON, sandboxed } from "./helpers.js";

describe.skipIf(!sandboxed)(`vpnns demo (${sandboxed ? "sandboxed" : SKIP_REASON})`, () => {
  let stdout = "";
  let exitCode: number | undefined;

  beforeAll(async () => {
    const result = await execa(process.execPath, [CLI, "demo"], { reject: false, timeout: 120_000 });
    stdout = result.stdout;
    exitCode = result.exitCode;
  });

  it("passes every checked line", () => {
    const checks = stdout.split("\n").filter((line) => line.startsWith("[ok]") || line.startsWith("[FAIL]"));
    expect(stdout).not.toContain("[FAIL]");
    expect(checks.length).toBeGreaterThanOrEqual(9);
    expect(stdout).toMatch(new RegExp(`^${checks.length} passed, 0 failed in [\\d.]+ s$`, "m"));
    expect(exitCode).toBe(0);
  });

  it.each([
    "the service sees its tunnel address",
    "resolves through the profile's DNS server",
    "unreachable from inside the profile",
    "the app reaches nothing",
    "everything the demo made is gone",
  ])("checks that %s", (phrase) => {
    expect(stdout).toContain(phrase);
  });
});
