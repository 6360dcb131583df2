/**
 * Concurrent use against the lab: many `vpnns run` calls on one profile at once, many profiles
 * brought up and down in parallel, and `vpnns down` racing `vpnns run`. The apps block on a file
 * that the test creates, so every check happens while they provably run, never after a sleep.
 * Runs only inside test/sandbox.sh, and imports the lab from dist/ (npm run build first).
 */
import { execa } from "execa";
import { mkdtemp, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, test } from "vitest";
import type { Lab, LabClient } from "../../src/lab/lab.js";
import type { ProfileReport } from "../../src/core/status.js";
import { interfaceName, namespaceName } from "../../src/core/names.js";
import { importClient, leftovers, makeDirs, PROBE, sandboxed, seenAddress, SKIP_REASON, vpnns, waitFor, wireguardGoPids, type ProbeResult, type TestDirs } from "./helpers.js";

/** Seconds to wait for a handshake: ten wireguard-go daemons starting at once on two cores take long. */
const HANDSHAKE_TIMEOUT_S = "60";
/** Milliseconds for a whole test, generous because the machine is small and shared. */
const TEST_TIMEOUT_MS = 300_000;
/** Milliseconds one vpnns command may take before the test gives up on it. */
const COMMAND_TIMEOUT_MS = 240_000;

/**
 * The app of the tests: `sh -c BLOCKING_APP sh FOLDER NAME` prints its name and network namespace,
 * marks that it runs by creating FOLDER/NAME, waits for FOLDER/release, then prints "done NAME".
 */
const BLOCKING_APP = 'echo "$2 $(readlink /proc/self/ns/net)"; touch "$1/$2"; while [ ! -e "$1/release" ]; do sleep 0.05; done; echo "done $2"';

/** Return the stderr line of a run whose app a `vpnns down` ended. */
function wentDownMessage(profile: string): string {
  return `vpnns: profile ${profile} was taken down while the command ran, which ended it; once the down has finished, start it again with: vpnns run --profile ${profile}`;
}

async function command(argv: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const [file = "", ...args] = argv;
  const result = await execa(file, args, { reject: false });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

async function pathExists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Namespaces named vpnns-* in `ip netns list`. */
async function vpnnsNamespaces(): Promise<string[]> {
  const { stdout } = await command(["ip", "netns", "list"]);
  return stdout
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name.startsWith("vpnns-"))
    .sort();
}

/** Links named vns-* in the host namespace: a profile's interface belongs inside its namespace. */
async function strayLinks(): Promise<string[]> {
  const { stdout } = await command(["ip", "-j", "link", "show"]);
  return (JSON.parse(stdout) as { ifname: string }[]).map((link) => link.ifname).filter((name) => name.startsWith("vns-"));
}

async function statusOf(dirs: TestDirs, profile: string): Promise<ProfileReport> {
  const result = await vpnns(dirs, ["status", profile, "--json"]);
  if (result.exitCode !== 0) throw new Error(`vpnns status ${profile} failed: ${result.all}`);
  return JSON.parse(result.stdout) as ProfileReport;
}

/** Finds the child processes of a process by their command name, from /proc/PID/stat. */
async function childrenNamed(parent: number, name: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const command = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const parentPid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (command === name && parentPid === parent) found.push(Number(entry));
  }
  return found;
}

/**
 * Writes `ip` and `nsenter` wrappers into the folder. A call whose arguments contain the folder's
 * path, which only the app's launch (`nsenter`, or `ip netns exec` for a profile without a mount
 * namespace) has, creates FOLDER/ip-paused and waits for FOLDER/ip-go first.
 */
async function writePausingLaunchers(folder: string): Promise<void> {
  for (const tool of ["ip", "nsenter"]) {
    const realTool = (await command(["sh", "-c", `command -v ${tool}`])).stdout.trim();
    const script = [
      "#!/bin/sh",
      `case "$*" in *"${folder}"*)`,
      `  touch "${folder}/ip-paused"`,
      `  while [ ! -e "${folder}/ip-go" ]; do sleep 0.05; done ;;`,
      "esac",
      `exec ${realTool} "$@"`,
      "",
    ].join("\n");
    await writeFile(join(folder, tool), script, { mode: 0o755 });
  }
}

function blockingRun(dirs: TestDirs, profile: string, barrier: string, name: string, flags: string[] = [], env: Record<string, string> = {}) {
  return vpnns(dirs, ["run", "--profile", profile, ...flags, "--", "sh", "-c", BLOCKING_APP, "sh", barrier, name], { timeout: COMMAND_TIMEOUT_MS, env });
}

if (!sandboxed) test.skip(`concurrency tests skipped: ${SKIP_REASON}`, () => {});

describe.skipIf(!sandboxed)("concurrency", { timeout: TEST_TIMEOUT_MS }, () => {
  let lab: Lab;
  let dirs: TestDirs;

  beforeAll(async () => {
    const labModule = (await import("../../dist/lab/lab.js")) as typeof import("../../src/lab/lab.js");
    lab = await labModule.createLab();
    dirs = await makeDirs("concurrency");
  });

  afterEach(async () => {
    await vpnns(dirs, ["down", "--all"], { timeout: COMMAND_TIMEOUT_MS });
  });

  afterAll(async () => {
    if (dirs) await vpnns(dirs, ["down", "--all"], { timeout: COMMAND_TIMEOUT_MS });
    await lab?.destroy();
  });

  it("20 runs at once share one namespace", async () => {
    const profile = "crowd";
    const namespace = namespaceName(profile);
    const link = interfaceName(profile);
    await importClient(dirs, lab, profile);
    const barrier = await mkdtemp("/run/vpnns/barrier-");
    const names = Array.from({ length: 20 }, (_, index) => `app${index}`);
    const runs = names.map((name) => blockingRun(dirs, profile, barrier, name, ["--handshake-timeout", HANDSHAKE_TIMEOUT_S]));

    try {
      await waitFor("all 20 apps to start", async () => (await Promise.all(names.map((name) => pathExists(join(barrier, name))))).every(Boolean), 120_000);
      expect(await vpnnsNamespaces()).toEqual([namespace]);
      const tables = await command(["ip", "netns", "exec", namespace, "nft", "list", "tables"]);
      expect(tables.stdout.trim().split("\n")).toEqual(["table inet vpnns"]);
      const inside = await command(["ip", "-n", namespace, "-j", "link", "show"]);
      expect((JSON.parse(inside.stdout) as { ifname: string }[]).map((entry) => entry.ifname).sort()).toEqual([link, "lo"].sort());
      expect(await strayLinks()).toEqual([]);
      expect(await wireguardGoPids(link), "wireguard-go daemons of the profile").toHaveLength(1);
      expect(await readdir(join(dirs.stateDir, profile, "runs"))).toHaveLength(20);
      expect((await statusOf(dirs, profile)).state).toBe("up");
    } finally {
      await writeFile(join(barrier, "release"), "");
    }

    const results = await Promise.all(runs);
    const namespaceLinks = new Set<string>();
    results.forEach((result, index) => {
      expect(result.exitCode, result.all).toBe(0);
      const [first, second] = result.stdout.split("\n");
      expect(first?.startsWith(`${names[index]} net:[`), result.stdout).toBe(true);
      expect(second).toBe(`done ${names[index]}`);
      expect(result.stderr, `stderr of run ${names[index]}`).toBe("");
      namespaceLinks.add(first!.split(" ")[1]!);
    });
    expect([...namespaceLinks], "network namespaces the apps ran in").toHaveLength(1);
    expect(await vpnnsNamespaces()).toEqual([]);
    expect(await strayLinks()).toEqual([]);
    expect(await leftovers(dirs, profile, link)).toEqual([]);
  });

  it("10 profiles up and down in parallel", async () => {
    const profiles = Array.from({ length: 10 }, (_, index) => `par${index}`);
    const clients = new Map<string, LabClient>();
    for (const profile of profiles) clients.set(profile, await importClient(dirs, lab, profile));

    const ups = await Promise.all(
      profiles.map((profile) => vpnns(dirs, ["up", profile, "--handshake-timeout", HANDSHAKE_TIMEOUT_S], { timeout: COMMAND_TIMEOUT_MS })),
    );
    ups.forEach((result, index) => {
      expect(result.exitCode, `vpnns up ${profiles[index]}: ${result.all}`).toBe(0);
      expect(result.stderr).toContain(`profile ${profiles[index]} is up`);
    });
    expect(await vpnnsNamespaces()).toEqual(profiles.map(namespaceName).sort());
    expect(await strayLinks()).toEqual([]);
    for (const profile of profiles) expect((await statusOf(dirs, profile)).state, `status of ${profile}`).toBe("up");

    const probes = await Promise.all(
      profiles.map(async (profile) => {
        const result = await vpnns(dirs, ["run", "--profile", profile, "--", process.execPath, PROBE, `http://${lab.serviceAddress4}/`, "30000"], {
          timeout: COMMAND_TIMEOUT_MS,
        });
        return JSON.parse(result.stdout.trim().split("\n").pop() || "{}") as ProbeResult;
      }),
    );
    probes.forEach((probe, index) => {
      const profile = profiles[index]!;
      expect(probe.error, `probe in ${profile}`).toBeUndefined();
      expect(seenAddress(probe), `address the service saw from ${profile}`).toBe(clients.get(profile)!.address4);
    });

    const downs = await Promise.all(profiles.map((profile) => vpnns(dirs, ["down", profile], { timeout: COMMAND_TIMEOUT_MS })));
    downs.forEach((result, index) => {
      expect(result.exitCode, `vpnns down ${profiles[index]}: ${result.all}`).toBe(0);
      expect(result.stderr).toContain(`profile ${profiles[index]} is down`);
    });
    expect(await vpnnsNamespaces()).toEqual([]);
    expect(await strayLinks()).toEqual([]);
    for (const profile of profiles) expect(await leftovers(dirs, profile, interfaceName(profile)), `leftovers of ${profile}`).toEqual([]);
    expect(await readdir(join(dirs.stateDir, "locks"))).toEqual([]);
  });

  it("down ends a run with a clear message", async () => {
    const profile = "ended";
    await importClient(dirs, lab, profile);
    const up = await vpnns(dirs, ["up", profile, "--handshake-timeout", HANDSHAKE_TIMEOUT_S], { timeout: COMMAND_TIMEOUT_MS });
    expect(up.exitCode, up.all).toBe(0);
    const barrier = await mkdtemp("/run/vpnns/barrier-");
    const run = blockingRun(dirs, profile, barrier, "victim");
    await waitFor("the app to start", () => pathExists(join(barrier, "victim")), 120_000);

    const down = await vpnns(dirs, ["down", profile], { timeout: COMMAND_TIMEOUT_MS });
    expect(down.exitCode, down.all).toBe(0);
    // The app's shell, and its sleep when that has started.
    expect(down.stderr).toMatch(new RegExp(`profile ${profile} is down \\(ended \\d+ process(es)? inside\\)`));

    const result = await run;
    expect(result.exitCode).toBe(143);
    expect(result.stdout.split("\n")[0]).toMatch(/^victim net:\[\d+\]$/);
    expect(result.stderr.trim()).toBe(wentDownMessage(profile));
    expect(await leftovers(dirs, profile, interfaceName(profile))).toEqual([]);
  });

  it("down waits for a starting run", async () => {
    const profile = "starting";
    await importClient(dirs, lab, profile);
    const up = await vpnns(dirs, ["up", profile, "--handshake-timeout", HANDSHAKE_TIMEOUT_S], { timeout: COMMAND_TIMEOUT_MS });
    expect(up.exitCode, up.all).toBe(0);
    const barrier = await mkdtemp("/run/vpnns/barrier-");
    await writePausingLaunchers(barrier);

    // The run stops right before its app's launch, where the profile is up and the run registered.
    const run = blockingRun(dirs, profile, barrier, "starter", [], { PATH: `${barrier}:${process.env.PATH ?? "/usr/bin:/bin"}` });
    await waitFor("the run to reach its app's launch", () => pathExists(join(barrier, "ip-paused")), 120_000);
    const down = vpnns(dirs, ["down", profile], { timeout: COMMAND_TIMEOUT_MS });
    let downEnded = false;
    void down.finally(() => {
      downEnded = true;
    });
    await waitFor("vpnns down to wait for the lock or end", async () => downEnded || (await childrenNamed(down.pid!, "flock")).length > 0, 120_000);
    await writeFile(join(barrier, "ip-go"), "");

    const downResult = await down;
    expect(downResult.exitCode, downResult.all).toBe(0);
    // The down found the app inside and ended it: it did not start after the down, nor in a namespace the down had already deleted.
    expect(downResult.stderr).toMatch(new RegExp(`profile ${profile} is down \\(ended \\d+ process(es)? inside\\)`));
    // An app that the down missed would wait for this file.
    await writeFile(join(barrier, "release"), "");
    const result = await run;
    expect(result.timedOut).toBe(false);
    expect(result.exitCode, result.all).toBe(143);
    expect(result.stdout.split("\n")[0]).toMatch(/^starter net:\[\d+\]$/);
    expect(result.stderr.trim()).toBe(wentDownMessage(profile));
    expect(await leftovers(dirs, profile, interfaceName(profile))).toEqual([]);
  });

  it("down racing runs leaves nothing half-built", async () => {
    const profile = "race";
    await importClient(dirs, lab, profile);

    for (let round = 0; round < 3; round += 1) {
      const up = await vpnns(dirs, ["up", profile, "--handshake-timeout", HANDSHAKE_TIMEOUT_S], { timeout: COMMAND_TIMEOUT_MS });
      expect(up.exitCode, up.all).toBe(0);
      const barrier = await mkdtemp("/run/vpnns/barrier-");
      const early = Array.from({ length: 4 }, (_, index) => `early${index}`);
      const racing = Array.from({ length: 8 }, (_, index) => `racing${index}`);
      const flags = ["--handshake-timeout", HANDSHAKE_TIMEOUT_S];
      const earlyRuns = early.map((name) => blockingRun(dirs, profile, barrier, name, flags));
      await waitFor("the early apps to start", async () => (await Promise.all(early.map((name) => pathExists(join(barrier, name))))).every(Boolean), 120_000);

      // The racing runs start together with the down: each one starts before, during or after it.
      const racingRuns = racing.map((name) => blockingRun(dirs, profile, barrier, name, flags));
      const down = await vpnns(dirs, ["down", profile], { timeout: COMMAND_TIMEOUT_MS });
      expect(down.exitCode, down.all).toBe(0);
      await writeFile(join(barrier, "release"), "");

      const results = await Promise.all([...earlyRuns, ...racingRuns]);
      [...early, ...racing].forEach((name, index) => {
        const result = results[index]!;
        if (result.exitCode === 0) {
          expect(result.stdout.split("\n").pop(), `output of ${name}`).toBe(`done ${name}`);
          expect(result.stderr, `stderr of ${name}`).toBe("");
          return;
        }
        // Otherwise the down ended the app, and vpnns prints that and nothing else.
        expect(result.exitCode, `exit code of ${name}: ${result.all}`).toBe(143);
        expect(result.stderr.trim(), `stderr of ${name}`).toBe(wentDownMessage(profile));
      });
      // The early apps ran when the down began, so it ended every one of them.
      for (const result of results.slice(0, early.length)) expect(result.exitCode, result.all).toBe(143);

      expect(await vpnnsNamespaces()).toEqual([]);
      expect(await strayLinks()).toEqual([]);
      expect(await leftovers(dirs, profile, interfaceName(profile))).toEqual([]);
      expect((await statusOf(dirs, profile)).state).toBe("down");
    }
  });
});
