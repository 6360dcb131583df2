import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { planPingGroupRange, readPingGroupRange } from "../../src/resources/ping-group-range.js";

const root = mkdtempSync(join(tmpdir(), "vpnns-ping-range-"));

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function file(content: string): string {
  const path = join(root, `range-${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, content);
  return path;
}

describe("readPingGroupRange", () => {
  it("reads the kernel's tab-separated form", async () => {
    expect(await readPingGroupRange(file("0\t2147483647\n"))).toBe("0 2147483647");
    expect(await readPingGroupRange(file("1\t0\n"))).toBe("1 0");
  });

  it("returns undefined for a missing file", async () => {
    expect(await readPingGroupRange(join(root, "missing"))).toBeUndefined();
  });

  it("returns undefined for other content", async () => {
    expect(await readPingGroupRange(file("1 0 2\n"))).toBeUndefined();
    expect(await readPingGroupRange(file("all\n"))).toBeUndefined();
  });
});

describe("planPingGroupRange", () => {
  it("runs sysctl inside the namespace", () => {
    const command = planPingGroupRange("vpnns-work", "100 200");
    expect(command.argv).toEqual(["ip", "netns", "exec", "vpnns-work", "sysctl", "-q", "-w", "net.ipv4.ping_group_range=100 200"]);
    expect(command.options.intent).toBe("copy net.ipv4.ping_group_range (100 200) into vpnns-work");
  });
});
