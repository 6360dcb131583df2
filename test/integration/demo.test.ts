/** `vpnns demo` end to end: it nests its own sandbox inside the test sandbox. */
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { CLI, SKIP_REASON, sandboxed } from "./helpers.js";

describe.skipIf(!sandboxed)(`vpnns demo (${sandboxed ? "sandboxed" : SKIP_REASON})`, () => {
  it("passes every checked line", async () => {
    const result = await execa(process.execPath, [CLI, "demo"], { reject: false, timeout: 120_000 });
    const lines = result.stdout.split("\n");
    const checks = lines.filter((line) => line.startsWith("[ok]") || line.startsWith("[FAIL]"));
    expect(result.stdout).not.toContain("[FAIL]");
    expect(checks.length).toBeGreaterThanOrEqual(9);
    expect(result.stdout).toMatch(new RegExp(`^${checks.length} passed, 0 failed in [\\d.]+ s$`, "m"));
    expect(result.exitCode).toBe(0);
  });

  it("names the checked guarantees", async () => {
    const result = await execa(process.execPath, [CLI, "demo"], { reject: false, timeout: 120_000 });
    for (const phrase of ["the service sees its tunnel address", "resolves through the profile's DNS server", "unreachable from inside the profile", "the app reaches nothing", "everything the demo made is gone"]) {
      expect(result.stdout).toContain(phrase);
    }
  });
});
