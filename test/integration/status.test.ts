/**
 * `vpnns status` of several profiles at once against the lab. Its health checks run in batches
 * (src/core/health.ts, src/tools/netns-batch.ts), so each test breaks some profiles by hand and
 * checks that status names exactly those, with the problems that `vpnns check`, which checks one
 * profile with a process per check, reports for each. Covers both firewall backends, the fallback
 * for a batch whose namespace disappears midway, and the `wg show` lines of kernel WireGuard.
 * Runs only inside test/sandbox.sh, and imports the lab from dist/ (npm run build first).
 */
import { execa } from "execa";
import { chmod, mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, test } from "vitest";
import type { Lab } from "../../src/lab/lab.js";
import type { ProfileReport } from "../../src/core/status.js";
import type { CheckReport } from "../../src/core/check.js";
import { interfaceName, namespaceName } from "../../src/core/names.js";
import { importClient, makeDirs, sandboxed, SKIP_REASON, vpnns, waitFor, wireguardGoPids, type TestDirs } from "./helpers.js";

if (!sandboxed) test.skip(`status tests skipped: ${SKIP_REASON}`, () => {});

async function must(argv: string[]): Promise<string> {
  const [file = "", ...args] = argv;
  const result = await execa(file, args, { reject: false });
  if (result.exitCode !== 0) throw new Error(`'${argv.join(" ")}' failed with ${result.exitCode}: ${result.stderr}`);
  return result.stdout;
}

async function writeSettings(dirs: TestDirs, settings: Record<string, string>): Promise<void> {
  await mkdir(dirs.configDir, { recursive: true, mode: 0o700 });
  await writeFile(join(dirs.configDir, "settings.json"), JSON.stringify(settings), { mode: 0o600 });
}

async function upOrThrow(dirs: TestDirs, profile: string): Promise<void> {
  const result = await vpnns(dirs, ["up", profile]);
  if (result.exitCode !== 0) throw new Error(`vpnns up ${profile} failed: ${result.all}`);
}

/** `vpnns status --json` of every profile, by profile name. */
async function statusOfAll(dirs: TestDirs, env: Record<string, string> = {}): Promise<Map<string, ProfileReport>> {
  const result = await vpnns(dirs, ["status", "--json"], { env });
  if (result.exitCode !== 0) throw new Error(`vpnns status failed: ${result.all}`);
  return new Map((JSON.parse(result.stdout) as ProfileReport[]).map((report) => [report.profile, report]));
}

/** Return the problems that `vpnns check` finds for one profile, from the detail of its "up" check. */
async function checkedProblems(dirs: TestDirs, profile: string): Promise<string[]> {
  const result = await vpnns(dirs, ["check", profile, "--json"]);
  const report = JSON.parse(result.stdout) as CheckReport;
  const up = report.checks.find((check) => check.name === "up");
  if (up === undefined) throw new Error(`vpnns check ${profile} has no "up" check: ${result.all}`);
  if (up.ok) return [];
  const prefix = `profile ${profile} is broken: `;
  if (!up.detail.startsWith(prefix)) throw new Error(`unexpected "up" detail of ${profile}: ${up.detail}`);
  return up.detail.slice(prefix.length).split("; ");
}

/** Expects status to report each profile with these problems, and `vpnns check` the same ones. */
async function expectProblems(dirs: TestDirs, expected: Record<string, string[]>, env: Record<string, string> = {}): Promise<void> {
  const reports = await statusOfAll(dirs, env);
  for (const [profile, problems] of Object.entries(expected)) {
    const report = reports.get(profile);
    expect(report, `status of ${profile}`).toBeDefined();
    expect(report!.problems, `problems of ${profile} in status`).toEqual(problems);
    expect(report!.state, `state of ${profile}`).toBe(problems.length > 0 ? "broken" : "up");
  }
  for (const [profile, problems] of Object.entries(expected)) {
    expect(await checkedProblems(dirs, profile), `problems of ${profile} in vpnns check`).toEqual(problems);
  }
}

async function linkExists(namespace: string, link: string): Promise<boolean> {
  const result = await execa("ip", ["-n", namespace, "link", "show", "dev", link], { reject: false });
  return result.exitCode === 0;
}

describe.skipIf(!sandboxed)("status of several profiles", () => {
  let lab: Lab;
  /** Profiles to take down after each test, with the folders they live in. */
  const used: { dirs: TestDirs; profile: string }[] = [];

  async function bringUp(dirs: TestDirs, profiles: string[]): Promise<void> {
    for (const profile of profiles) {
      used.push({ dirs, profile });
      await importClient(dirs, lab, profile);
      await upOrThrow(dirs, profile);
    }
  }

  beforeAll(async () => {
    const labModule = (await import("../../dist/lab/lab.js")) as typeof import("../../src/lab/lab.js");
    lab = await labModule.createLab();
  });

  afterEach(async () => {
    for (const { dirs, profile } of used.splice(0)) await vpnns(dirs, ["down", profile]);
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  it("names exactly the broken nft profiles", { timeout: 240_000 }, async () => {
    const dirs = await makeDirs("status-nft");
    const profiles = ["st-ok", "st-nokill", "st-down", "st-nowg", "st-nons"];
    await bringUp(dirs, profiles);
    expect((await statusOfAll(dirs)).get("st-ok")?.firewallBackend).toBe("nft");

    await must(["ip", "netns", "exec", namespaceName("st-nokill"), "nft", "delete", "table", "inet", "vpnns"]);
    await must(["ip", "-n", namespaceName("st-down"), "link", "set", "dev", interfaceName("st-down"), "down"]);
    // The tun interface goes with its wireguard-go daemon.
    for (const pid of await wireguardGoPids(interfaceName("st-nowg"))) process.kill(pid, "SIGKILL");
    await waitFor("the daemon and its interface to go", async () => {
      return (await wireguardGoPids(interfaceName("st-nowg"))).length === 0 && !(await linkExists(namespaceName("st-nowg"), interfaceName("st-nowg")));
    });
    await must(["ip", "netns", "delete", namespaceName("st-nons")]);

    await expectProblems(dirs, {
      "st-ok": [],
      "st-nokill": ["the kill-switch in vpnns-st-nokill is missing"],
      "st-down": ["interface vns-st-down is down"],
      "st-nowg": ["interface vns-st-nowg is missing from vpnns-st-nowg", "the wireguard-go process of vns-st-nowg is not running"],
      "st-nons": ["namespace vpnns-st-nons is missing"],
    });
  });

  it("names exactly the broken iptables profiles", { timeout: 240_000 }, async () => {
    const dirs = await makeDirs("status-iptables");
    await writeSettings(dirs, { firewallBackend: "iptables" });
    const profiles = ["st-ipt-ok", "st-ipt-v4", "st-ipt-v6", "st-ipt-down"];
    await bringUp(dirs, profiles);
    expect((await statusOfAll(dirs)).get("st-ipt-ok")?.firewallBackend).toBe("iptables");

    await must(["ip", "netns", "exec", namespaceName("st-ipt-v4"), "iptables", "-P", "OUTPUT", "ACCEPT"]);
    await must(["ip", "netns", "exec", namespaceName("st-ipt-v6"), "ip6tables", "-P", "INPUT", "ACCEPT"]);
    await must(["ip", "-n", namespaceName("st-ipt-down"), "link", "set", "dev", interfaceName("st-ipt-down"), "down"]);

    await expectProblems(dirs, {
      "st-ipt-ok": [],
      "st-ipt-v4": ["the kill-switch in vpnns-st-ipt-v4 is missing"],
      "st-ipt-v6": ["the kill-switch in vpnns-st-ipt-v6 is missing"],
      "st-ipt-down": ["interface vns-st-ipt-down is down"],
    });
  });

  it("checks one by one when a namespace goes during the batch", { timeout: 240_000 }, async () => {
    const dirs = await makeDirs("status-fallback");
    const profiles = ["st-fb-a", "st-fb-b", "st-fb-c", "st-fb-d"];
    await bringUp(dirs, profiles);
    await must(["ip", "-n", namespaceName("st-fb-d"), "link", "set", "dev", interfaceName("st-fb-d"), "down"]);

    // An ip on PATH that logs every call and deletes the name of st-fb-b's namespace before each
    // batch, after status has seen that it exists. A process inside keeps the namespace itself,
    // with its interface, so that the wireguard-go daemon keeps running.
    const folder = await mkdtemp("/run/vpnns/status-ip-");
    const realIp = (await must(["sh", "-c", "command -v ip"])).trim();
    const wrapper = [
      "#!/bin/sh",
      `echo "$*" >> ${folder}/calls`,
      `case "$*" in *-batch*) ${realIp} netns delete ${namespaceName("st-fb-b")} 2>/dev/null ;; esac`,
      `exec ${realIp} "$@"`,
      "",
    ].join("\n");
    await writeFile(join(folder, "ip"), wrapper);
    await chmod(join(folder, "ip"), 0o755);
    const keeper = execa("ip", ["netns", "exec", namespaceName("st-fb-b"), "sleep", "600"], { reject: false });
    try {
      await waitFor("the process that keeps the namespace", async () => (await must(["ip", "netns", "pids", namespaceName("st-fb-b")])).trim() !== "");
      const reports = await statusOfAll(dirs, { PATH: `${folder}:${process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}` });

      // The namespace existed when status looked, so its checks ran, inside no namespace by that name.
      expect(reports.get("st-fb-b")?.problems).toEqual(["interface vns-st-fb-b is missing from vpnns-st-fb-b", "the kill-switch in vpnns-st-fb-b is missing"]);
      const expected: Record<string, string[]> = { "st-fb-a": [], "st-fb-c": [], "st-fb-d": ["interface vns-st-fb-d is down"] };
      for (const [profile, problems] of Object.entries(expected)) {
        expect(reports.get(profile)?.problems, `problems of ${profile} in status`).toEqual(problems);
        expect(await checkedProblems(dirs, profile), `problems of ${profile} in vpnns check`).toEqual(problems);
      }
      const calls = (await readFile(join(folder, "calls"), "utf8")).split("\n");
      expect(calls.filter((call) => call.includes("-batch")).length).toBeGreaterThan(0);
      // The batch whose namespace went ran again one command at a time.
      expect(calls).toContain(`netns exec ${namespaceName("st-fb-b")} cat /sys/class/net/${interfaceName("st-fb-b")}/flags`);
    } finally {
      keeper.kill("SIGKILL");
      await keeper;
    }
  });

  it("reads the peers of both WireGuard backends", { timeout: 120_000 }, async () => {
    const dirs = await makeDirs("status-peers");
    const profile = "st-peers";
    const link = interfaceName(profile);
    await bringUp(dirs, [profile]);
    // wg reaches wireguard-go over its socket, which is what both backends' reads are compared to.
    const [expectedKey, expectedEndpoint] = (await must(["wg", "show", link, "endpoints"])).trim().split("\t");

    const userspace = (await statusOfAll(dirs)).get(profile)!;
    expect(userspace.wireguardBackend).toBe("wireguard-go");
    expect(userspace.peers.map((peer) => [peer.publicKey, peer.endpoint])).toEqual([[expectedKey, expectedEndpoint]]);

    // A state that names kernel WireGuard makes status run `wg show` inside the namespace, in the
    // batch, which reaches the same daemon over its socket.
    const stateFile = join(dirs.stateDir, profile, "state.json");
    const state = JSON.parse(await readFile(stateFile, "utf8")) as { wireguardBackend: string };
    await writeFile(stateFile, JSON.stringify({ ...state, wireguardBackend: "kernel" }));
    const kernel = (await statusOfAll(dirs)).get(profile)!;
    expect(kernel.wireguardBackend).toBe("kernel");
    expect(kernel.problems).toEqual([]);
    expect(kernel.peers.map((peer) => [peer.publicKey, peer.endpoint])).toEqual([[expectedKey, expectedEndpoint]]);
    expect(kernel.peers[0]?.rxBytes).toBeGreaterThan(0);
    await writeFile(stateFile, JSON.stringify(state));
  });
});
