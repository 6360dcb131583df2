/**
 * `vpnns status` and `vpnns check` against profiles broken in ways that the batched checks could
 * misread or wait on forever. The cases:
 * - many profiles, with a namespace deleted during the batch;
 * - a link renamed, with its old name kept as an alternative name;
 * - a control socket that never ends its reply;
 * - hand-edited state records (null, other names, no firewall backend);
 * - a stopped wireguard-go daemon;
 * - nft and iptables output chains whose accept policy hides behind a rule comment.
 * Runs only inside test/sandbox.sh, and imports the lab from dist/ (npm run build first).
 */
import { execa } from "execa";
import net from "node:net";
import { chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, test } from "vitest";
import type { Lab } from "../../src/lab/lab.js";
import type { ProfileReport } from "../../src/core/status.js";
import type { CheckReport } from "../../src/core/check.js";
import { interfaceName, namespaceName } from "../../src/core/names.js";
import { SKIP_REASON, importClient, makeDirs, sandboxed, vpnns, waitFor, type TestDirs } from "./helpers.js";

if (!sandboxed) test.skip(`breaker status tests skipped: ${SKIP_REASON}`, () => {});

async function must(argv: string[]): Promise<string> {
  const [file = "", ...args] = argv;
  const result = await execa(file, args, { reject: false });
  if (result.exitCode !== 0) throw new Error(`'${argv.join(" ")}' failed with ${result.exitCode}: ${result.stderr}`);
  return result.stdout;
}

/** `vpnns status --json` of every profile, by profile name; throws on a non-zero exit. */
async function statusOfAll(dirs: TestDirs, timeout = 60_000): Promise<Map<string, ProfileReport>> {
  const result = await vpnns(dirs, ["status", "--json"], { timeout });
  if (result.timedOut) throw new Error(`vpnns status did not finish within ${timeout} ms`);
  if (result.exitCode !== 0) throw new Error(`vpnns status failed with ${result.exitCode}: ${result.all}`);
  return new Map((JSON.parse(result.stdout) as ProfileReport[]).map((report) => [report.profile, report]));
}

/** Return the detail of the "up" check of `vpnns check`, or "ok" when it passed. */
async function checkedUp(dirs: TestDirs, profile: string): Promise<string> {
  const result = await vpnns(dirs, ["check", profile, "--json"]);
  const up = (JSON.parse(result.stdout) as CheckReport).checks.find((check) => check.name === "up");
  if (up === undefined) throw new Error(`vpnns check ${profile} has no "up" check: ${result.all}`);
  return up.ok ? "ok" : up.detail;
}

describe.skipIf(!sandboxed)("status of damaged profiles", () => {
  let lab: Lab;
  const used: { dirs: TestDirs; profile: string }[] = [];

  async function bringUp(dirs: TestDirs, profiles: string[]): Promise<void> {
    for (const profile of profiles) {
      used.push({ dirs, profile });
      await importClient(dirs, lab, profile);
      const result = await vpnns(dirs, ["up", profile]);
      if (result.exitCode !== 0) throw new Error(`vpnns up ${profile} failed: ${result.all}`);
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

  it("many profiles with a namespace gone midway", { timeout: 400_000 }, async () => {
    const dirs = await makeDirs("breaker-many");
    // 14 profiles fill several batches, so the batch with the deleted namespace runs again one
    // command at a time while the others are parsed, and each report must get its own results.
    const profiles = Array.from({ length: 14 }, (_, index) => `br-many-${String(index).padStart(2, "0")}`);
    await bringUp(dirs, profiles);
    const deleted = profiles[1]!;
    await must(["ip", "netns", "exec", namespaceName(profiles[5]!), "nft", "delete", "table", "inet", "vpnns"]);
    await must(["ip", "-n", namespaceName(profiles[9]!), "link", "set", "dev", interfaceName(profiles[9]!), "down"]);

    const folder = await mkdtemp("/run/vpnns/breaker-ip-");
    const realIp = (await must(["sh", "-c", "command -v ip"])).trim();
    const wrapper = ["#!/bin/sh", `case "$*" in *-batch*) ${realIp} netns delete ${namespaceName(deleted)} 2>/dev/null ;; esac`, `exec ${realIp} "$@"`, ""].join("\n");
    await writeFile(join(folder, "ip"), wrapper);
    await chmod(join(folder, "ip"), 0o755);
    // A process inside keeps the namespace, and so the interface and its daemon, after its name goes.
    const keeper = execa("ip", ["netns", "exec", namespaceName(deleted), "sleep", "600"], { reject: false });
    try {
      await waitFor("the process that keeps the namespace", async () => (await must(["ip", "netns", "pids", namespaceName(deleted)])).trim() !== "");
      const result = await vpnns(dirs, ["status", "--json"], { env: { PATH: `${folder}:${process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}` } });
      expect(result.exitCode, result.all).toBe(0);
      const reports = new Map((JSON.parse(result.stdout) as ProfileReport[]).map((report) => [report.profile, report]));
      for (const profile of profiles) {
        let expected: string[] = [];
        if (profile === deleted) expected = [`interface ${interfaceName(deleted)} is missing from ${namespaceName(deleted)}`, `the kill-switch in ${namespaceName(deleted)} is missing`];
        if (profile === profiles[5]) expected = [`the kill-switch in ${namespaceName(profile)} is missing`];
        if (profile === profiles[9]) expected = [`interface ${interfaceName(profile)} is down`];
        expect(reports.get(profile)?.problems, `problems of ${profile}`).toEqual(expected);
      }
    } finally {
      keeper.kill("SIGKILL");
      await keeper;
    }
  });

  it("link renamed with its name as altname", { timeout: 120_000 }, async () => {
    // ip finds the renamed link by its alternative name, but the kill-switch matches only names.
    const dirs = await makeDirs("breaker-altname");
    await bringUp(dirs, ["br-alt"]);
    const namespace = namespaceName("br-alt");
    const link = interfaceName("br-alt");
    await must(["ip", "-n", namespace, "link", "set", "dev", link, "name", "renamed0"]);
    await must(["ip", "-n", namespace, "link", "property", "add", "dev", "renamed0", "altname", link]);

    const report = (await statusOfAll(dirs)).get("br-alt");
    expect(report?.problems).toEqual([`interface ${link} is missing from ${namespace}`]);
    expect(await checkedUp(dirs, "br-alt")).toBe(`profile br-alt is broken: interface ${link} is missing from ${namespace}`);
  });

  it("control socket that trickles", { timeout: 120_000 }, async () => {
    const dirs = await makeDirs("breaker-socket");
    await bringUp(dirs, ["br-sock"]);
    const socketPath = `/var/run/wireguard/${interfaceName("br-sock")}.sock`;
    // A server in place of the daemon's socket that accepts a request and sends one byte every
    // 500 ms, never the empty line that ends a reply.
    await rename(socketPath, `${socketPath}.real`);
    const timers: NodeJS.Timeout[] = [];
    const server = net.createServer((connection) => {
      connection.on("error", () => {});
      timers.push(setInterval(() => connection.write("x"), 500));
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    try {
      const report = (await statusOfAll(dirs, 40_000)).get("br-sock");
      expect(report?.peers).toEqual([]);
      expect(report?.state).toBe("up");
    } finally {
      for (const timer of timers) clearInterval(timer);
      server.close();
      await rm(socketPath, { force: true });
      await rename(`${socketPath}.real`, socketPath);
    }
  });

  it("state record of null", { timeout: 120_000 }, async () => {
    // Valid JSON that is not a record counts as no record, as invalid JSON does.
    const dirs = await makeDirs("breaker-null");
    await bringUp(dirs, ["br-null"]);
    const stateFile = join(dirs.stateDir, "br-null", "state.json");
    const saved = await readFile(stateFile, "utf8");
    await writeFile(stateFile, "null\n");
    try {
      const report = (await statusOfAll(dirs)).get("br-null");
      expect(report?.state).toBe("down");
      expect(await checkedUp(dirs, "br-null")).toBe("profile br-null is not up");
    } finally {
      await writeFile(stateFile, saved);
    }
  });

  it("state record with a bad interface name", { timeout: 120_000 }, async () => {
    const dirs = await makeDirs("breaker-badname");
    await bringUp(dirs, ["br-bad"]);
    const stateFile = join(dirs.stateDir, "br-bad", "state.json");
    const saved = await readFile(stateFile, "utf8");
    await writeFile(stateFile, JSON.stringify({ ...JSON.parse(saved), interfaceName: "vns br" }));
    const problem = `the state record names namespace "vpnns-br-bad" and interface "vns br" instead of vpnns-br-bad and vns-br-bad: take the profile down with: vpnns down br-bad`;
    try {
      const report = (await statusOfAll(dirs)).get("br-bad");
      expect(report?.state).toBe("broken");
      expect(report?.problems).toEqual([problem]);
      expect(await checkedUp(dirs, "br-bad")).toBe(`profile br-bad is broken: ${problem}`);
    } finally {
      await writeFile(stateFile, saved);
    }
  });

  it("stopped wireguard-go daemon", { timeout: 120_000 }, async () => {
    // A stopped daemon keeps its interface up and its socket open, but forwards no packets.
    const dirs = await makeDirs("breaker-stopped");
    await bringUp(dirs, ["br-stop"]);
    const state = JSON.parse(await readFile(join(dirs.stateDir, "br-stop", "state.json"), "utf8")) as { wireguardPid: number };
    process.kill(state.wireguardPid, "SIGSTOP");
    try {
      const report = (await statusOfAll(dirs)).get("br-stop");
      const problem = `the wireguard-go process ${state.wireguardPid} of vns-br-stop is stopped: resume it with: kill -CONT ${state.wireguardPid}`;
      expect(report?.state).toBe("broken");
      expect(report?.problems).toEqual([problem]);
      expect(await checkedUp(dirs, "br-stop")).toBe(`profile br-stop is broken: ${problem}`);
    } finally {
      process.kill(state.wireguardPid, "SIGCONT");
    }
  });

  it("wg show on a stopped daemon", { timeout: 120_000 }, async () => {
    // A record that names kernel WireGuard makes status run `wg show` in the batch, and wg talks to
    // the control socket of a wireguard-go daemon of that name, to which a stopped daemon never replies.
    const dirs = await makeDirs("breaker-wgshow");
    await bringUp(dirs, ["br-wgshow"]);
    const stateFile = join(dirs.stateDir, "br-wgshow", "state.json");
    const saved = await readFile(stateFile, "utf8");
    const state = JSON.parse(saved) as { wireguardPid: number };
    await writeFile(stateFile, JSON.stringify({ ...state, wireguardBackend: "kernel" }));
    process.kill(state.wireguardPid, "SIGSTOP");
    try {
      const report = (await statusOfAll(dirs, 40_000)).get("br-wgshow");
      expect(report?.wireguardBackend).toBe("kernel");
      expect(report?.peers).toEqual([]);
    } finally {
      process.kill(state.wireguardPid, "SIGCONT");
      await writeFile(stateFile, saved);
    }
  });

  it("policy drop in a rule comment", { timeout: 120_000 }, async () => {
    const dirs = await makeDirs("breaker-comment");
    await bringUp(dirs, ["br-cmt"]);
    const namespace = namespaceName("br-cmt");
    await must(["ip", "netns", "exec", namespace, "nft", "add", "rule", "inet", "vpnns", "output", "counter", "comment", '"policy drop;"']);
    await must(["ip", "netns", "exec", namespace, "nft", "chain", "inet", "vpnns", "output", "{ policy accept ; }"]);

    const report = (await statusOfAll(dirs)).get("br-cmt");
    expect(report?.problems).toEqual([`the kill-switch in ${namespace} is missing`]);
    expect(await checkedUp(dirs, "br-cmt")).toBe(`profile br-cmt is broken: the kill-switch in ${namespace} is missing`);
  });

  it("state record without firewall backend", { timeout: 120_000 }, async () => {
    // Without the field, the kill-switch went unchecked, so its deletion went unreported.
    const dirs = await makeDirs("breaker-nobackend");
    await bringUp(dirs, ["br-nofw"]);
    const stateFile = join(dirs.stateDir, "br-nofw", "state.json");
    const saved = await readFile(stateFile, "utf8");
    const { firewallBackend: _removed, ...withoutBackend } = JSON.parse(saved) as Record<string, unknown>;
    await writeFile(stateFile, JSON.stringify(withoutBackend));
    await must(["ip", "netns", "exec", namespaceName("br-nofw"), "nft", "delete", "table", "inet", "vpnns"]);
    const problem = `the state record has no firewallBackend, expected "nft" or "iptables": take the profile down with: vpnns down br-nofw`;
    try {
      const report = (await statusOfAll(dirs)).get("br-nofw");
      expect(report?.state).toBe("broken");
      expect(report?.problems).toEqual([problem]);
      expect(await checkedUp(dirs, "br-nofw")).toBe(`profile br-nofw is broken: ${problem}`);
    } finally {
      await writeFile(stateFile, saved);
    }
  });

  it("nft chain header in a comment", { timeout: 120_000 }, async () => {
    // A comment with line breaks in the input chain imitates an output chain that drops, while the
    // real output chain accepts.
    const dirs = await makeDirs("breaker-nft-lines");
    await bringUp(dirs, ["br-nftnl"]);
    const namespace = namespaceName("br-nftnl");
    const imitation = "x\n\tchain output {\n\t\ttype filter hook output priority filter; policy drop;\n";
    const folder = await mkdtemp("/run/vpnns/breaker-nft-");
    await writeFile(join(folder, "rules.nft"), `add rule inet vpnns input counter comment "${imitation}"\nchain inet vpnns output { policy accept ; }\n`);
    await must(["ip", "netns", "exec", namespace, "nft", "-f", join(folder, "rules.nft")]);

    const report = (await statusOfAll(dirs)).get("br-nftnl");
    expect(report?.problems).toEqual([`the kill-switch in ${namespace} is missing`]);
    expect(await checkedUp(dirs, "br-nftnl")).toBe(`profile br-nftnl is broken: the kill-switch in ${namespace} is missing`);
  });

  it("iptables chain line in a comment", { timeout: 120_000 }, async () => {
    // A comment with line breaks imitates the chain line of an OUTPUT chain that drops, while the
    // real OUTPUT chain accepts.
    const dirs = await makeDirs("breaker-ipt-lines");
    await mkdir(dirs.configDir, { recursive: true, mode: 0o700 });
    await writeFile(join(dirs.configDir, "settings.json"), JSON.stringify({ firewallBackend: "iptables" }), { mode: 0o600 });
    await bringUp(dirs, ["br-iptnl"]);
    const namespace = namespaceName("br-iptnl");
    await must(["ip", "netns", "exec", namespace, "iptables", "-A", "INPUT", "-m", "comment", "--comment", "x\n:OUTPUT DROP [0:0]\n", "-j", "DROP"]);
    await must(["ip", "netns", "exec", namespace, "iptables", "-P", "OUTPUT", "ACCEPT"]);

    const report = (await statusOfAll(dirs)).get("br-iptnl");
    expect(report?.firewallBackend).toBe("iptables");
    expect(report?.problems).toEqual([`the kill-switch in ${namespace} is missing`]);
    expect(await checkedUp(dirs, "br-iptnl")).toBe(`profile br-iptnl is broken: the kill-switch in ${namespace} is missing`);
  });
});
