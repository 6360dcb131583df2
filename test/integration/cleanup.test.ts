/** `vpnns cleanup` removes what vpnns made after crashes, and nothing else. */
import { execa } from "execa";
import { mkdir, readdir, rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SKIP_REASON, makeDirs, sandboxed, vpnns, type TestDirs } from "./helpers.js";

async function sh(file: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  return (await execa(file, args, { env })).stdout;
}

async function linkNames(): Promise<string[]> {
  const links = JSON.parse(await sh("ip", ["-j", "link", "show"])) as { ifname: string }[];
  return links.map((link) => link.ifname);
}

async function namespaces(): Promise<string[]> {
  return (await sh("ip", ["netns", "list"])).split("\n").map((line) => line.split(" ")[0] ?? "").filter(Boolean);
}

describe.skipIf(!sandboxed)(`vpnns cleanup (${sandboxed ? "sandboxed" : SKIP_REASON})`, () => {
  let dirs: TestDirs;
  let output = "";
  let exitCode: number | undefined;

  beforeAll(async () => {
    dirs = await makeDirs("cleanup");
    // Leftovers of crashed runs: a namespace, a wireguard-go link never moved, DNS files, a lock file.
    await sh("ip", ["netns", "add", "vpnns-crashed"]);
    await sh("wireguard-go", ["vns-stray"], { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1" });
    await mkdir("/etc/netns/vpnns-dnsonly", { recursive: true });
    await mkdir(`${dirs.stateDir}/locks`, { recursive: true });
    await execa("touch", [`${dirs.stateDir}/locks/lockonly.lock`]);
    // Things vpnns did not make, with similar names.
    await sh("ip", ["netns", "add", "notvpnns-keep"]);
    await sh("ip", ["link", "add", "vns-keep", "type", "veth", "peer", "name", "keep-peer"]);
    await mkdir("/etc/netns/keep", { recursive: true });

    const result = await vpnns(dirs, ["cleanup"]);
    output = result.all;
    exitCode = result.exitCode;
  });

  afterAll(async () => {
    await execa("ip", ["netns", "delete", "notvpnns-keep"], { reject: false });
    await execa("ip", ["link", "delete", "vns-keep"], { reject: false });
    await rm("/etc/netns/keep", { recursive: true, force: true });
  });

  it("exits with code 0", () => {
    expect(output).toContain("removed stray interface vns-stray");
    expect(exitCode).toBe(0);
  });

  it("removes vpnns namespaces", async () => {
    expect(await namespaces()).not.toContain("vpnns-crashed");
  });

  it("removes stray links and daemons", async () => {
    expect(await linkNames()).not.toContain("vns-stray");
    const daemons = await execa("pgrep", ["-f", "wireguard-go vns-stray"], { reject: false });
    expect(daemons.stdout).toBe("");
  });

  it("removes DNS files and lock files", async () => {
    const netns = await readdir("/etc/netns");
    expect(netns).not.toContain("vpnns-dnsonly");
    expect(await readdir(`${dirs.stateDir}/locks`)).not.toContain("lockonly.lock");
  });

  it("leaves other names alone", async () => {
    expect(await namespaces()).toContain("notvpnns-keep");
    expect(await linkNames()).toContain("vns-keep");
    expect(await readdir("/etc/netns")).toContain("keep");
  });

  it("reports nothing on a second run", async () => {
    const again = await vpnns(dirs, ["cleanup"]);
    expect(again.exitCode).toBe(0);
    expect(again.all).toContain("nothing to clean up");
  });
});
