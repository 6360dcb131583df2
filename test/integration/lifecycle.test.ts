/**
 * The life of a profile on a real machine: `up`, `down`, `run` and the profile commands build and
 * remove real namespaces, wireguard-go links and kill-switches against the lab provider. Setup
 * failures are injected with the wrappers in test/fixtures/fail-nth, and setups are interrupted by
 * signals and SIGKILL. Runs only inside test/sandbox.sh, and uses dist/ (npm run build first).
 */
import { execa } from "execa";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it, test } from "vitest";
import type { Lab, LabClient } from "../../src/lab/lab.js";
import { interfaceName, namespaceName } from "../../src/core/names.js";
import { formatCommand } from "../../src/tools/exec.js";
import { importClient, leftovers, makeDirs, probeInside, sandboxed, seenAddress, SKIP_REASON, vpnns, wireguardGoPids, type TestDirs } from "./helpers.js";

const MAKE_WRAPPERS = fileURLToPath(new URL("../fixtures/fail-nth/make-wrappers.sh", import.meta.url));
/** Programs that vpnns runs during `up`, `run` and `down`, each replaced by a counting wrapper. */
const WRAPPED_PROGRAMS = ["ip", "wg", "wireguard-go", "nft", "iptables-restore", "ip6tables-restore", "mount", "umount", "taskset", "nsenter"];
/** The app of the recorded run, which learns the calls that `run` makes when nothing fails. */
const RECORDED_APP = ["true"];

/** Milliseconds a probe waits for a request that must fail, because the kill-switch drops it. */
const UNREACHABLE_TIMEOUT_MS = 1500;
/** Maximum milliseconds to wait for a step of a setup that another vpnns process runs. */
const MOMENT_TIMEOUT_MS = 20_000;

type VpnnsProcess = ReturnType<typeof vpnns>;

if (!sandboxed) test.skip(`lifecycle tests skipped: ${SKIP_REASON}`, () => {});

// ---------------------------------------------------------------------------------------------
// Reading the machine

/** Run a command in the test process and return its stdout. Throws on a non-zero exit. */
async function output(argv: string[]): Promise<string> {
  const [file = "", ...args] = argv;
  return (await execa(file, args)).stdout;
}

interface LinkJson {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
}

interface AddressJson {
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number; scope: string }[];
}

interface RouteJson {
  dst: string;
  dev?: string;
}

async function linksIn(namespace: string): Promise<LinkJson[]> {
  return JSON.parse(await output(["ip", "-n", namespace, "-j", "link", "show"])) as LinkJson[];
}

async function linkIn(namespace: string, name: string): Promise<LinkJson | undefined> {
  return (await linksIn(namespace)).find((link) => link.ifname === name);
}

/** List the global addresses of a link as "address/prefix". */
async function addressesOf(namespace: string, name: string): Promise<string[]> {
  const [link] = JSON.parse(await output(["ip", "-n", namespace, "-j", "address", "show", "dev", name])) as AddressJson[];
  return (link?.addr_info ?? []).filter((entry) => entry.scope === "global").map((entry) => `${entry.local}/${entry.prefixlen}`);
}

async function routesIn(namespace: string, family: "-4" | "-6"): Promise<RouteJson[]> {
  return JSON.parse(await output(["ip", "-n", namespace, "-j", family, "route", "show"])) as RouteJson[];
}

interface NftChain {
  name: string;
  hook?: string;
  policy?: string;
}

/** Read the chains of the kill-switch's nft table. Returns undefined when the table is missing. */
async function killSwitchChains(namespace: string): Promise<NftChain[] | undefined> {
  const result = await execa("ip", ["netns", "exec", namespace, "nft", "-j", "list", "table", "inet", "vpnns"], { reject: false });
  if (result.exitCode !== 0) return undefined;
  const entries = (JSON.parse(result.stdout) as { nftables: { chain?: NftChain }[] }).nftables;
  return entries.flatMap((entry) => (entry.chain ? [entry.chain] : []));
}

/** Return whether the process exists and is not a zombie, because a killed daemon may wait a while to be reaped. */
async function isRunning(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  return stat !== undefined && stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
}

async function fileMode(path: string): Promise<string> {
  return ((await stat(path)).mode & 0o777).toString(8).padStart(4, "0");
}

async function waitUntil(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = MOMENT_TIMEOUT_MS, intervalMs = 2): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Wait until the process prints the text on stderr. Rejects when it exits first or the time runs out. */
function waitForStderr(child: VpnnsProcess, text: string, timeoutMs = MOMENT_TIMEOUT_MS): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${JSON.stringify(text)} on stderr: ${seen}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      seen += chunk.toString("utf8");
      if (seen.includes(text)) finish();
    };
    const finish = (error?: Error) => {
      clearTimeout(timer);
      child.stderr?.off("data", onData);
      if (error) reject(error);
      else resolve();
    };
    child.stderr?.on("data", onData);
    void child.then((result) => finish(new Error(`vpnns exited with ${result.exitCode ?? result.signal} before printing ${JSON.stringify(text)}: ${result.all}`)));
  });
}

// ---------------------------------------------------------------------------------------------
// Profiles

/** Insert a line after the first line that starts with the prefix. */
function insertAfter(text: string, prefix: string, line: string): string {
  const lines = text.split("\n");
  const index = lines.findIndex((candidate) => candidate.startsWith(prefix));
  if (index < 0) throw new Error(`no line starting with ${JSON.stringify(prefix)} in the profile`);
  lines.splice(index + 1, 0, line);
  return lines.join("\n");
}

function replaceValue(text: string, key: string, value: string): string {
  const pattern = new RegExp(`^${key} = .*$`, "m");
  if (!pattern.test(text)) throw new Error(`no ${key} line in the profile`);
  return text.replace(pattern, `${key} = ${value}`);
}

/** Import a wg-quick text as a profile and return the result of `vpnns profile import`. */
async function importText(dirs: TestDirs, profile: string, text: string, extra: string[] = []) {
  const folder = await mkdtemp("/run/vpnns/conf-");
  const file = join(folder, `${profile}.conf`);
  await writeFile(file, text, { mode: 0o600 });
  return vpnns(dirs, ["profile", "import", file, "--name", profile, ...extra]);
}

async function writeSettings(dirs: TestDirs, settings: Record<string, string>): Promise<void> {
  await mkdir(dirs.configDir, { recursive: true, mode: 0o700 });
  await writeFile(join(dirs.configDir, "settings.json"), JSON.stringify(settings), { mode: 0o600 });
}

function profileFile(dirs: TestDirs, profile: string): string {
  return join(dirs.configDir, "profiles", `${profile}.json`);
}

function stateFile(dirs: TestDirs, profile: string): string {
  return join(dirs.stateDir, profile, "state.json");
}

/** The part of `vpnns status --json` that the tests read. */
interface StatusJson {
  state: string;
  wireguardBackend: string | null;
  firewallBackend: string | null;
  problems: string[];
  processes: { pid: number; command: string }[];
  peers: { latestHandshakeAgeSeconds: number | null }[];
}

async function statusOf(dirs: TestDirs, profile: string): Promise<StatusJson> {
  const result = await vpnns(dirs, ["status", profile, "--json"]);
  if (result.exitCode !== 0) throw new Error(`vpnns status ${profile} failed: ${result.all}`);
  return JSON.parse(result.stdout) as StatusJson;
}

async function leftoversOf(dirs: TestDirs, profile: string): Promise<string[]> {
  return leftovers(dirs, profile, interfaceName(profile));
}

// ---------------------------------------------------------------------------------------------
// Injected failures

/** One call of a wrapped program, as test/fixtures/fail-nth/fail-nth.sh logs it. */
interface WrappedCall {
  number: number;
  /** Number of the wrapped call that started this one (`ip netns exec NS nft` for its nft), or 0. */
  parent: number;
  failed: boolean;
  argv: string[];
}

async function readCalls(folder: string): Promise<WrappedCall[]> {
  const text = await readFile(join(folder, "calls"), "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => {
      const [number = "", parent = "", result = "", ...argv] = line.split("\t");
      return { number: Number(number), parent: Number(parent), failed: result === "failed", argv };
    });
}

/** Return whether the call starts the app, as `nsenter --net=… --mount=… --wdns=… -- APP...` or `ip netns exec NAMESPACE APP...`. */
function isAppCall(call: WrappedCall, app: string[]): boolean {
  if (call.argv[0] === "nsenter") return call.argv.slice(call.argv.indexOf("--") + 1).join(" ") === app.join(" ");
  return call.argv.slice(0, 3).join(" ") === "ip netns exec" && call.argv.slice(4).join(" ") === app.join(" ");
}

/** Return a key for what a call does that is the same in every run: its command line, or "the app". */
function callKind(call: WrappedCall, app: string[]): string {
  if (isAppCall(call, app)) return "the app";
  // The mount namespace step moves to the next CPU when the kernel rejects a bind, so the CPU that
  // taskset names differs between runs. Every CPU counts as one kind of call.
  return call.argv.join(" ").replace(/^taskset --cpu-list \d+ /, "taskset --cpu-list CPU ");
}

/** Follow a nested call out to the call that vpnns itself ran. */
function outermost(calls: WrappedCall[], call: WrappedCall): WrappedCall {
  let current = call;
  while (current.parent !== 0) {
    const parent = calls.find((candidate) => candidate.number === current.parent);
    if (!parent) throw new Error(`call ${current.number} names parent ${current.parent}, which is not in the log`);
    current = parent;
  }
  return current;
}

/**
 * Return whether the command is a query whose failure vpnns reads as "absent" or "not yet" by
 * design, so the run goes on. These are the link lookup in the host namespace (showLink) and each
 * poll of the handshake wait (readLatestHandshakes).
 */
function isToleratedQuery(argv: string[], profile: string): boolean {
  const command = argv.join(" ");
  const link = interfaceName(profile);
  return command === `ip -j -d link show dev ${link}` || command === `ip netns exec ${namespaceName(profile)} wg show ${link} latest-handshakes`;
}

// ---------------------------------------------------------------------------------------------

describe.skipIf(!sandboxed)("lifecycle", () => {
  let lab: Lab;
  let dirs: TestDirs;
  /** Profiles to take down after each test, with the folders they live in. */
  const used: { dirs: TestDirs; profile: string }[] = [];

  function track(profile: string, where: TestDirs = dirs): string {
    used.push({ dirs: where, profile });
    return profile;
  }

  beforeAll(async () => {
    const labModule = (await import("../../dist/lab/lab.js")) as typeof import("../../src/lab/lab.js");
    lab = await labModule.createLab();
    dirs = await makeDirs("lifecycle");
  });

  afterEach(async () => {
    for (const { dirs: where, profile } of used.splice(0)) await vpnns(where, ["down", profile]);
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  describe("up of a full-tunnel profile", () => {
    const profile = "lc-full";
    const namespace = namespaceName(profile);
    const link = interfaceName(profile);
    let client: LabClient;
    let upResult: Awaited<VpnnsProcess>;

    beforeAll(async () => {
      client = await importClient(dirs, lab, profile);
      upResult = await vpnns(dirs, ["up", profile]);
    });

    afterAll(async () => {
      await vpnns(dirs, ["down", profile]);
    });

    it("up reports the new profile", () => {
      expect(upResult.exitCode, upResult.all).toBe(0);
      expect(upResult.stderr).toContain(`profile ${profile} is up: namespace ${namespace}, interface ${link} (wireguard-go)`);
    });

    it("namespace holds only lo and the tunnel", async () => {
      const links = await linksIn(namespace);
      expect(links.map((entry) => entry.ifname)).toEqual(["lo", link]);
      expect(links[0]?.flags).toContain("UP");
      expect(links[1]?.flags).toContain("UP");
    });

    it("tunnel has the profile's addresses", async () => {
      expect((await addressesOf(namespace, link)).sort()).toEqual([`${client.address4}/32`, `${client.address6}/128`].sort());
    });

    it("tunnel MTU defaults to 1420", async () => {
      expect((await linkIn(namespace, link))?.mtu).toBe(1420);
    });

    it("default routes use the tunnel", async () => {
      const v4 = await routesIn(namespace, "-4");
      const v6 = await routesIn(namespace, "-6");
      expect(v4.filter((route) => route.dst === "default")).toEqual([expect.objectContaining({ dev: link })]);
      expect(v6.filter((route) => route.dst === "default")).toEqual([expect.objectContaining({ dev: link })]);
      expect(v4.every((route) => route.dev === link)).toBe(true);
      expect(v6.every((route) => route.dev === link)).toBe(true);
    });

    it("kill-switch drops by default", async () => {
      const chains = await killSwitchChains(namespace);
      expect(chains).toBeDefined();
      for (const hook of ["input", "forward", "output"]) {
        const chain = chains?.find((candidate) => candidate.hook === hook);
        expect(chain, `chain with hook ${hook}`).toBeDefined();
        expect(chain?.policy, `policy of the ${hook} chain`).toBe("drop");
      }
    });

    it("DNS files point at the profile", async () => {
      const resolv = await readFile(`/etc/netns/${namespace}/resolv.conf`, "utf8");
      expect(resolv.split("\n").filter((line) => line.startsWith("nameserver"))).toEqual([`nameserver ${lab.serviceAddress4}`]);
      const nsswitch = await readFile(`/etc/netns/${namespace}/nsswitch.conf`, "utf8");
      expect(nsswitch.split("\n").filter((line) => /^\s*hosts\s*:/.test(line))).toEqual(["hosts: files dns"]);
    });

    it("state file is private", async () => {
      expect(await fileMode(stateFile(dirs, profile))).toBe("0600");
      expect(await fileMode(join(dirs.stateDir, profile))).toBe("0700");
      const state = JSON.parse(await readFile(stateFile(dirs, profile), "utf8")) as { phase: string; wireguardBackend: string; firewallBackend: string };
      expect(state.phase).toBe("up");
      expect(state.wireguardBackend).toBe("wireguard-go");
      expect(state.firewallBackend).toBe("nft");
    });

    it("profile file is private", async () => {
      expect(await fileMode(profileFile(dirs, profile))).toBe("0600");
      expect(await fileMode(join(dirs.configDir, "profiles"))).toBe("0700");
      expect(await fileMode(dirs.configDir)).toBe("0700");
    });

    it("traffic leaves through the tunnel", async () => {
      const inside = await probeInside(dirs, profile, `http://${lab.serviceAddress4}/`);
      expect(inside.ok, inside.error).toBe(true);
      expect(seenAddress(inside)).toBe(client.address4);
      const host = await probeInside(dirs, profile, `http://${lab.hostAddress4}:${lab.hostHttpPort}/`, UNREACHABLE_TIMEOUT_MS);
      expect(host.ok).toBe(false);
    });
  });

  describe("up with profile settings", () => {
    it("profile MTU replaces the default", async () => {
      const profile = track("lc-mtu");
      const client = await importClient(dirs, lab, profile);
      const edited = await importText(dirs, profile, insertAfter(client.profileText, "Address = ", "MTU = 1380"), ["--force"]);
      expect(edited.exitCode, edited.all).toBe(0);
      const up = await vpnns(dirs, ["up", profile]);
      expect(up.exitCode, up.all).toBe(0);
      expect((await linkIn(namespaceName(profile), interfaceName(profile)))?.mtu).toBe(1380);
    });

    it("specific AllowedIPs give specific routes", async () => {
      const profile = track("lc-routes");
      const client = await lab.addClient();
      const imported = await importText(dirs, profile, replaceValue(client.profileText, "AllowedIPs", "192.0.2.0/24"));
      expect(imported.exitCode, imported.all).toBe(0);
      const up = await vpnns(dirs, ["up", profile]);
      expect(up.exitCode, up.all).toBe(0);

      const namespace = namespaceName(profile);
      const link = interfaceName(profile);
      const v4 = await routesIn(namespace, "-4");
      const v6 = await routesIn(namespace, "-6");
      expect(v4).toContainEqual(expect.objectContaining({ dst: "192.0.2.0/24", dev: link }));
      expect(v4.map((route) => route.dst)).not.toContain("default");
      expect(v6.map((route) => route.dst)).not.toContain("default");
      const inside = await probeInside(dirs, profile, `http://${lab.serviceAddress4}/`);
      expect(inside.ok, inside.error).toBe(true);
      expect(seenAddress(inside)).toBe(client.address4);
    });
  });

  describe("up twice", () => {
    it("second up changes nothing", async () => {
      const profile = track("lc-twice");
      await importClient(dirs, lab, profile);
      const namespace = namespaceName(profile);
      const link = interfaceName(profile);
      const first = await vpnns(dirs, ["up", profile]);
      expect(first.exitCode, first.all).toBe(0);
      const index = (await linkIn(namespace, link))?.ifindex;
      const pids = await wireguardGoPids(link);
      const state = await readFile(stateFile(dirs, profile), "utf8");
      expect(pids).toHaveLength(1);

      const second = await vpnns(dirs, ["up", profile]);
      expect(second.exitCode, second.all).toBe(0);
      expect(second.stderr).toContain(`profile ${profile} is already up; nothing changed`);
      expect((await linkIn(namespace, link))?.ifindex).toBe(index);
      expect(await wireguardGoPids(link)).toEqual(pids);
      expect(await readFile(stateFile(dirs, profile), "utf8")).toBe(state);
    });

    it("up rebuilds a missing kill-switch", async () => {
      const profile = track("lc-nonft");
      const client = await importClient(dirs, lab, profile);
      const namespace = namespaceName(profile);
      const link = interfaceName(profile);
      expect((await vpnns(dirs, ["up", profile])).exitCode).toBe(0);
      const [oldPid] = await wireguardGoPids(link);
      await output(["ip", "netns", "exec", namespace, "nft", "delete", "table", "inet", "vpnns"]);
      expect((await statusOf(dirs, profile)).state).toBe("broken");

      const again = await vpnns(dirs, ["up", profile]);
      expect(again.exitCode, again.all).toBe(0);
      expect(again.stderr).toContain(`profile ${profile} is half-made (the kill-switch in ${namespace} is missing); removing it before rebuilding`);
      expect(again.stderr).toContain(`profile ${profile} is up`);
      expect(await killSwitchChains(namespace)).toHaveLength(3);
      const newPids = await wireguardGoPids(link);
      expect(newPids).toHaveLength(1);
      expect(newPids).not.toContain(oldPid);
      expect(await isRunning(oldPid!)).toBe(false);
      const inside = await probeInside(dirs, profile, `http://${lab.serviceAddress4}/`);
      expect(seenAddress(inside)).toBe(client.address4);
    });

    it("up rebuilds after wireguard-go dies", async () => {
      const profile = track("lc-wgdead");
      const client = await importClient(dirs, lab, profile);
      const link = interfaceName(profile);
      expect((await vpnns(dirs, ["up", profile])).exitCode).toBe(0);
      const [oldPid] = await wireguardGoPids(link);
      process.kill(oldPid!, "SIGKILL");
      await waitUntil("the killed wireguard-go to exit", async () => (await wireguardGoPids(link)).length === 0);

      const again = await vpnns(dirs, ["up", profile]);
      expect(again.exitCode, again.all).toBe(0);
      expect(again.stderr).toContain(`profile ${profile} is half-made (`);
      expect(again.stderr).toContain(`the wireguard-go process of ${link} is not running`);
      expect(await wireguardGoPids(link)).toHaveLength(1);
      expect((await statusOf(dirs, profile)).state).toBe("up");
      const inside = await probeInside(dirs, profile, `http://${lab.serviceAddress4}/`);
      expect(seenAddress(inside)).toBe(client.address4);
    });

    it("up rebuilds after a killed up", async () => {
      const profile = track("lc-killup");
      const client = await importClient(dirs, lab, profile);
      const namespace = namespaceName(profile);
      const killed = vpnns(dirs, ["up", profile]);
      await waitUntil(`namespace ${namespace}`, () => existsSync(`/run/netns/${namespace}`));
      killed.kill("SIGKILL");
      expect((await killed).signal).toBe("SIGKILL");

      const again = await vpnns(dirs, ["up", profile]);
      expect(again.exitCode, again.all).toBe(0);
      expect(again.stderr).toMatch(new RegExp(`profile ${profile} is half-made \\((setup by process \\d+ crashed|leftovers of an earlier run)\\)`));
      expect((await statusOf(dirs, profile)).state).toBe("up");
      const inside = await probeInside(dirs, profile, `http://${lab.serviceAddress4}/`);
      expect(seenAddress(inside)).toBe(client.address4);
    });
  });

  describe("down", () => {
    it("down removes everything", async () => {
      const profile = track("lc-down");
      await importClient(dirs, lab, profile);
      expect((await vpnns(dirs, ["up", profile])).exitCode).toBe(0);
      expect(await leftoversOf(dirs, profile)).not.toEqual([]);

      const down = await vpnns(dirs, ["down", profile]);
      expect(down.exitCode, down.all).toBe(0);
      expect(down.stderr).toContain(`profile ${profile} is down`);
      expect(await leftoversOf(dirs, profile)).toEqual([]);
      expect(await output(["ip", "netns", "list"])).not.toContain(namespaceName(profile));
    });

    it("down ends processes inside", async () => {
      const profile = track("lc-procs");
      await importClient(dirs, lab, profile);
      const app = vpnns(dirs, ["run", "--profile", profile, "--keep", "--as-root", "--", "sleep", "1000"], { timeout: 120_000 });
      let sleepPid = 0;
      await waitUntil(
        "sleep to run inside the profile",
        async () => {
          if (!existsSync(stateFile(dirs, profile))) return false;
          const sleeping = (await statusOf(dirs, profile)).processes.find((entry) => entry.command === "sleep");
          sleepPid = sleeping?.pid ?? 0;
          return sleeping !== undefined;
        },
        MOMENT_TIMEOUT_MS,
        50,
      );

      const down = await vpnns(dirs, ["down", profile]);
      expect(down.exitCode, down.all).toBe(0);
      expect(down.stderr).toContain(`profile ${profile} is down (ended 1 process inside)`);
      expect(await isRunning(sleepPid)).toBe(false);
      const ended = await app;
      expect(ended.exitCode, ended.all).toBe(143);
      expect(await leftoversOf(dirs, profile)).toEqual([]);
    });

    it("down twice is safe", async () => {
      const profile = track("lc-down2");
      await importClient(dirs, lab, profile);
      expect((await vpnns(dirs, ["up", profile])).exitCode).toBe(0);
      const first = await vpnns(dirs, ["down", profile]);
      const second = await vpnns(dirs, ["down", profile]);
      expect(first.exitCode, first.all).toBe(0);
      expect(second.exitCode, second.all).toBe(0);
      expect(second.stderr).toContain(`profile ${profile} is not up; nothing to remove`);
      expect(await leftoversOf(dirs, profile)).toEqual([]);
    });

    it("down --all takes several down", async () => {
      const own = await makeDirs("lifecycle-all");
      const profiles = ["lc-all1", "lc-all2", "lc-all3"].map((profile) => track(profile, own));
      for (const profile of profiles) {
        await importClient(own, lab, profile);
        const up = await vpnns(own, ["up", profile]);
        expect(up.exitCode, up.all).toBe(0);
      }

      const down = await vpnns(own, ["down", "--all"]);
      expect(down.exitCode, down.all).toBe(0);
      for (const profile of profiles) {
        expect(down.stderr).toContain(`profile ${profile} is down`);
        expect(await leftoversOf(own, profile)).toEqual([]);
      }
    });
  });

  describe("fail closed", () => {
    const profile = "lc-failnth";
    let root: string;
    let wrappers: string;
    let counter: string;
    /** The calls of a successful `run`, which every failing run is measured against. */
    let recorded: WrappedCall[] = [];

    beforeAll(async () => {
      root = await mkdtemp("/run/vpnns/fail-nth-");
      wrappers = join(root, "bin");
      counter = join(root, "counter");
      await execa(MAKE_WRAPPERS, [wrappers, ...WRAPPED_PROGRAMS]);
      await importClient(dirs, lab, profile);
    });

    afterAll(async () => {
      await vpnns(dirs, ["down", profile]);
    });

    /** Run `vpnns run` with call number failAt of the wrapped programs failing (0: none). */
    async function runWithFailure(failAt: number, app: string[]) {
      await rm(counter, { recursive: true, force: true });
      await mkdir(counter);
      const result = await vpnns(dirs, ["run", "--profile", profile, "--as-root", "--", ...app], {
        env: { PATH: `${wrappers}:${process.env.PATH ?? ""}`, FAIL_NTH_DIR: counter, FAIL_NTH_AT: String(failAt) },
      });
      return { result, calls: await readCalls(counter) };
    }

    it("recorded run calls every tool", async () => {
      const { result, calls } = await runWithFailure(0, RECORDED_APP);
      expect(result.exitCode, result.all).toBe(0);
      expect(await leftoversOf(dirs, profile)).toEqual([]);
      recorded = calls;
      const programs = new Set(calls.map((call) => call.argv[0]));
      expect([...programs].sort()).toEqual(["ip", "mount", "nft", "nsenter", "taskset", "umount", "wg", "wireguard-go"]);
      expect(calls.some((call) => call.failed)).toBe(false);
    });

    it("each failing call fails closed", { timeout: 600_000 }, async () => {
      expect(recorded.length, "the recorded run must run first").toBeGreaterThan(0);
      const failedKinds = new Set<string>();

      // The number of handshake polls varies from run to run, so call k may be another command
      // than in the recorded run: each run's own log names it. The loop ends at the first run
      // that makes fewer than k calls, and the check after it proves that every kind of recorded
      // call failed once. The bound only stops a run-away loop.
      for (let k = 1; k <= recorded.length + 20; k++) {
        const marker = join(root, `marker-${k}`);
        const appArgv = ["touch", marker];
        const { result, calls } = await runWithFailure(k, appArgv);
        const failed = calls.find((call) => call.number === k);
        const created = existsSync(marker);
        if (!failed) {
          expect.soft(result.exitCode, `run ${k} without a failure: ${result.all}`).toBe(0);
          expect.soft(await leftoversOf(dirs, profile), `leftovers after run ${k}`).toEqual([]);
          break;
        }

        const outer = outermost(calls, failed);
        const app = calls.find((call) => isAppCall(call, appArgv));
        const label = `call ${k} (${failed.argv.join(" ")})`;
        // A nested call that fails makes its outer call fail, and vpnns gets only that failure.
        failedKinds.add(callKind(outer, appArgv));
        expect.soft(failed.failed, `${label} was logged as failed`).toBe(true);

        if (isToleratedQuery(outer.argv, profile)) {
          expect.soft(result.exitCode, `${label}, a tolerated query: ${result.all}`).toBe(0);
          expect.soft(created, `${label}: the app ran`).toBe(true);
          expect.soft(await leftoversOf(dirs, profile), `leftovers after ${label}`).toEqual([]);
          continue;
        }

        expect.soft(result.exitCode, `exit code after ${label}: ${result.all}`).toBe(1);
        expect.soft(result.stderr, `stderr after ${label}`).toContain(`fail-nth: injected failure in call ${k}: ${failed.argv.join(" ")}`);
        if (outer !== app) {
          expect.soft(result.stderr, `stderr after ${label}`).toContain(`'${formatCommand(outer.argv)}' exited with code 1`);
        }
        const beforeApp = app === undefined || outer.number <= app.number;
        if (beforeApp) {
          expect.soft(created, `${label} came before the app, which must not start`).toBe(false);
          expect.soft(await leftoversOf(dirs, profile), `leftovers after ${label}`).toEqual([]);
        } else {
          // A failure in the automatic teardown after the app leaves the profile for `down`.
          expect.soft(created, `${label} came after the app, which ran`).toBe(true);
          const down = await vpnns(dirs, ["down", profile]);
          expect.soft(down.exitCode, `down after ${label}: ${down.all}`).toBe(0);
          expect.soft(await leftoversOf(dirs, profile), `leftovers after ${label} and down`).toEqual([]);
        }
        // Clean up for the next run even when an assertion failed.
        await vpnns(dirs, ["down", profile]);
      }

      // Kinds are counted by the calls that vpnns itself makes. A nested call, such as the mount that
      // unshare runs in the mount namespace step, is numbered after its outer call. A retry of that
      // step on another CPU moves those numbers, so a run may miss a nested call.
      const recordedKinds = new Set(recorded.map((call) => callKind(outermost(recorded, call), RECORDED_APP)));
      expect([...recordedKinds].filter((kind) => !failedKinds.has(kind)), "recorded calls that no run made fail").toEqual([]);
    });
  });

  describe("crash recovery", () => {
    /** Moments of a setup, each the first sign of a step that is visible from outside. */
    const moments: { name: string; profile: string; next: "up" | "run" | "down"; reached: (profile: string) => boolean }[] = [
      { name: "namespace", profile: "lc-crash1", next: "run", reached: (profile) => existsSync(`/run/netns/${namespaceName(profile)}`) },
      { name: "wireguard-go socket", profile: "lc-crash2", next: "up", reached: (profile) => existsSync(`/run/wireguard/${interfaceName(profile)}.sock`) },
      { name: "DNS folder", profile: "lc-crash3", next: "up", reached: (profile) => existsSync(`/etc/netns/${namespaceName(profile)}`) },
      { name: "wireguard-go socket", profile: "lc-crash4", next: "down", reached: (profile) => existsSync(`/run/wireguard/${interfaceName(profile)}.sock`) },
    ];

    for (const moment of moments) {
      it(`kill -9 at ${moment.name}, then ${moment.next}`, async () => {
        const profile = track(moment.profile);
        const client = await importClient(dirs, lab, profile);
        const killed = vpnns(dirs, ["up", profile]);
        await waitUntil(`${moment.name} of ${profile}`, () => moment.reached(profile));
        killed.kill("SIGKILL");
        expect((await killed).signal, "vpnns up was still running when killed").toBe("SIGKILL");

        if (moment.next === "up") {
          const up = await vpnns(dirs, ["up", profile]);
          expect(up.exitCode, up.all).toBe(0);
          expect(up.stderr).toContain(`profile ${profile} is half-made`);
          expect((await statusOf(dirs, profile)).state).toBe("up");
          const inside = await probeInside(dirs, profile, `http://${lab.serviceAddress4}/`);
          expect(seenAddress(inside)).toBe(client.address4);
          expect((await vpnns(dirs, ["down", profile])).exitCode).toBe(0);
        } else if (moment.next === "run") {
          const marker = join(await mkdtemp("/run/vpnns/crash-"), "ran");
          const run = await vpnns(dirs, ["run", "--profile", profile, "--as-root", "--", "touch", marker]);
          expect(run.exitCode, run.all).toBe(0);
          expect(existsSync(marker)).toBe(true);
        } else {
          const down = await vpnns(dirs, ["down", profile]);
          expect(down.exitCode, down.all).toBe(0);
          expect(down.stderr).toContain(`profile ${profile} is down`);
        }
        expect(await leftoversOf(dirs, profile)).toEqual([]);
      });
    }
  });

  describe("iptables backend", () => {
    const profile = "lc-iptables";
    const namespace = namespaceName(profile);
    const link = interfaceName(profile);
    let own: TestDirs;
    let client: LabClient;

    beforeAll(async () => {
      own = await makeDirs("lifecycle-iptables");
      await writeSettings(own, { firewallBackend: "iptables" });
      client = await importClient(own, lab, profile);
    });

    afterAll(async () => {
      await vpnns(own, ["down", profile]);
    });

    it("up installs iptables DROP policies", async () => {
      const up = await vpnns(own, ["up", profile]);
      expect(up.exitCode, up.all).toBe(0);
      for (const save of ["iptables-save", "ip6tables-save"]) {
        const rules = await output(["ip", "netns", "exec", namespace, save, "-t", "filter"]);
        expect(rules, save).toMatch(/^:INPUT DROP/m);
        expect(rules, save).toMatch(/^:FORWARD DROP/m);
        expect(rules, save).toMatch(/^:OUTPUT DROP/m);
        expect(rules, save).toContain(`-A OUTPUT -o ${link} -j ACCEPT`);
        expect(rules, save).toContain("-A OUTPUT -o lo -j ACCEPT");
      }
      expect(await killSwitchChains(namespace)).toBeUndefined();
      expect((await statusOf(own, profile)).firewallBackend).toBe("iptables");
      expect((await statusOf(own, profile)).state).toBe("up");
    });

    it("iptables profile reaches only the tunnel", async () => {
      const inside = await probeInside(own, profile, `http://${lab.serviceAddress4}/`);
      expect(inside.ok, inside.error).toBe(true);
      expect(seenAddress(inside)).toBe(client.address4);
      const host = await probeInside(own, profile, `http://${lab.hostAddress4}:${lab.hostHttpPort}/`, UNREACHABLE_TIMEOUT_MS);
      expect(host.ok).toBe(false);
    });

    it("iptables profile goes down cleanly", async () => {
      const down = await vpnns(own, ["down", profile]);
      expect(down.exitCode, down.all).toBe(0);
      expect(await leftoversOf(own, profile)).toEqual([]);
    });
  });

  describe("WireGuard backend", () => {
    it("kernel backend fails cleanly", async () => {
      const own = await makeDirs("lifecycle-kernel");
      await writeSettings(own, { wireguardBackend: "kernel" });
      const profile = track("lc-kernel", own);
      await importClient(own, lab, profile);

      const up = await vpnns(own, ["up", profile]);
      expect(up.exitCode, up.all).toBe(1);
      expect(up.stderr).toContain(`'ip link add dev ${interfaceName(profile)} type wireguard' exited with code`);
      expect(await leftoversOf(own, profile)).toEqual([]);
    });

    it("auto backend falls back to wireguard-go", async () => {
      const own = await makeDirs("lifecycle-auto");
      await writeSettings(own, { wireguardBackend: "auto" });
      const profile = track("lc-auto", own);
      await importClient(own, lab, profile);

      const up = await vpnns(own, ["up", profile]);
      expect(up.exitCode, up.all).toBe(0);
      const status = await statusOf(own, profile);
      expect(status.state).toBe("up");
      expect(status.wireguardBackend).toBe("wireguard-go");
      expect(await wireguardGoPids(interfaceName(profile))).toHaveLength(1);
    });
  });

  describe("profile commands", () => {
    let own: TestDirs;

    beforeAll(async () => {
      own = await makeDirs("lifecycle-profiles");
    });

    it("import stores the named profile", async () => {
      const client = await lab.addClient();
      const imported = await importText(own, "lc-named", client.profileText);
      expect(imported.exitCode, imported.all).toBe(0);
      const list = await vpnns(own, ["profile", "list", "--json"]);
      expect(JSON.parse(list.stdout)).toEqual([{ name: "lc-named", state: "down" }]);
    });

    it("import again needs --force", async () => {
      const first = await lab.addClient();
      const second = await lab.addClient();
      expect((await importText(own, "lc-again", first.profileText)).exitCode).toBe(0);

      const rejected = await importText(own, "lc-again", second.profileText);
      expect(rejected.exitCode).toBe(2);
      expect(rejected.stderr).toContain(`profile lc-again already exists (${profileFile(own, "lc-again")}); add --force to replace it`);
      const unchanged = JSON.parse((await vpnns(own, ["profile", "show", "lc-again", "--json"])).stdout) as { interface: { addresses: string[] } };
      expect(unchanged.interface.addresses).toContain(`${first.address4}/32`);

      const replaced = await importText(own, "lc-again", second.profileText, ["--force"]);
      expect(replaced.exitCode, replaced.all).toBe(0);
      expect(replaced.stderr).toContain("replaced profile lc-again");
      const replacedProfile = JSON.parse((await vpnns(own, ["profile", "show", "lc-again", "--json"])).stdout) as { interface: { addresses: string[] } };
      expect(replacedProfile.interface.addresses).toContain(`${second.address4}/32`);
    });

    it("show --json hides the keys", async () => {
      const client = await lab.addClient();
      const presharedKey = (await output(["wg", "genpsk"])).trim();
      const privateKey = /^PrivateKey = (.*)$/m.exec(client.profileText)?.[1] ?? "";
      const text = insertAfter(client.profileText, "PublicKey = ", `PresharedKey = ${presharedKey}`);
      expect((await importText(own, "lc-secret", text)).exitCode).toBe(0);

      const shown = await vpnns(own, ["profile", "show", "lc-secret", "--json"]);
      expect(shown.exitCode, shown.all).toBe(0);
      const profile = JSON.parse(shown.stdout) as { interface: { privateKey: string }; peers: { presharedKey?: string }[] };
      expect(profile.interface.privateKey).toBe("(hidden)");
      expect(profile.peers[0]?.presharedKey).toBe("(hidden)");
      expect(shown.all).not.toContain(privateKey);
      expect(shown.all).not.toContain(presharedKey);
      // The stored file does hold both keys, so the check above tests the redaction.
      const stored = await readFile(profileFile(own, "lc-secret"), "utf8");
      expect(stored).toContain(privateKey);
      expect(stored).toContain(presharedKey);
    });

    it("remove is rejected while up", async () => {
      const profile = track("lc-remove", own);
      await importClient(own, lab, profile);
      expect((await vpnns(own, ["up", profile])).exitCode).toBe(0);

      const rejected = await vpnns(own, ["profile", "remove", profile]);
      expect(rejected.exitCode).toBe(2);
      expect(rejected.stderr).toContain(`profile ${profile} is up; take it down first with 'vpnns down ${profile}', or add --force`);
      expect(existsSync(profileFile(own, profile))).toBe(true);
      expect((await statusOf(own, profile)).state).toBe("up");

      const forced = await vpnns(own, ["profile", "remove", profile, "--force"]);
      expect(forced.exitCode, forced.all).toBe(0);
      expect(existsSync(profileFile(own, profile))).toBe(false);
      expect(await leftoversOf(own, profile)).toEqual([]);
    });

    it("readable profile file is rejected", async () => {
      const profile = track("lc-mode", own);
      await importClient(own, lab, profile);
      await chmod(profileFile(own, profile), 0o644);

      const up = await vpnns(own, ["up", profile]);
      expect(up.exitCode).toBe(2);
      expect(up.stderr).toContain(`profile file ${profileFile(own, profile)} has mode 0644`);
      expect(up.stderr).toContain(`chmod 600 ${profileFile(own, profile)}`);
      expect(await leftoversOf(own, profile)).toEqual([]);
    });

    it("invalid profile field is rejected", async () => {
      const profile = track("lc-invalid", own);
      await importClient(own, lab, profile);
      const file = profileFile(own, profile);
      const stored = JSON.parse(await readFile(file, "utf8")) as { interface: { mtu?: number } };
      stored.interface.mtu = 100;
      await writeFile(file, JSON.stringify(stored), { mode: 0o600 });

      for (const args of [["profile", "show", profile], ["up", profile]]) {
        const result = await vpnns(own, args);
        expect(result.exitCode, `vpnns ${args.join(" ")}`).toBe(2);
        expect(result.stderr, `vpnns ${args.join(" ")}`).toContain(`${file}: invalid interface.mtu 100`);
      }
      expect(await leftoversOf(own, profile)).toEqual([]);
    });
  });

  // cutTunnel() stops the provider for every client and cannot be undone, so these tests run last.
  describe("with the tunnel cut", () => {
    const signalTests = [
      { signal: "SIGINT", exitCode: 130, moment: "handshake wait", profile: "lc-int-hs" },
      { signal: "SIGTERM", exitCode: 143, moment: "handshake wait", profile: "lc-term-hs" },
      { signal: "SIGINT", exitCode: 130, moment: "namespace", profile: "lc-int-ns" },
      { signal: "SIGTERM", exitCode: 143, moment: "namespace", profile: "lc-term-ns" },
    ] as const;

    beforeAll(async () => {
      for (const profile of ["lc-timeout", "lc-nowait", "lc-crash-hs", ...signalTests.map((entry) => entry.profile)]) {
        await importClient(dirs, lab, profile);
      }
      await lab.cutTunnel();
    });

    it("handshake timeout fails cleanly", async () => {
      const profile = track("lc-timeout");
      const started = Date.now();
      const up = await vpnns(dirs, ["up", profile, "--handshake-timeout", "1"]);
      expect(up.exitCode, up.all).toBe(1);
      expect(up.stderr).toContain(`no WireGuard handshake with ${lab.endpoint4}`);
      expect(up.stderr).toContain("within 1 s");
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await leftoversOf(dirs, profile)).toEqual([]);
    });

    it("--no-wait skips the handshake", async () => {
      const profile = track("lc-nowait");
      const up = await vpnns(dirs, ["up", profile, "--no-wait"]);
      expect(up.exitCode, up.all).toBe(0);
      const status = await statusOf(dirs, profile);
      expect(status.state).toBe("up");
      expect(status.peers[0]?.latestHandshakeAgeSeconds).toBeNull();
    });

    for (const { signal, exitCode, moment, profile } of signalTests) {
      it(`${signal} at ${moment} unwinds`, async () => {
        track(profile);
        const namespace = namespaceName(profile);
        const started = Date.now();
        const up = vpnns(dirs, ["-v", "up", profile, "--handshake-timeout", "60"], { timeout: 120_000 });
        if (moment === "namespace") await waitUntil(`namespace ${namespace}`, () => existsSync(`/run/netns/${namespace}`));
        else await waitForStderr(up, "persistent-keepalive 25");
        up.kill(signal);

        const result = await up;
        expect(result.exitCode, result.all).toBe(exitCode);
        expect(result.stderr).toContain(`setup of profile ${profile} interrupted by ${signal}`);
        expect(Date.now() - started, "the setup stopped well before the handshake timeout").toBeLessThan(30_000);
        expect(await leftoversOf(dirs, profile)).toEqual([]);
      });
    }

    it("kill -9 in handshake wait, then down", async () => {
      const profile = track("lc-crash-hs");
      const up = vpnns(dirs, ["-v", "up", profile, "--handshake-timeout", "60"], { timeout: 120_000 });
      await waitForStderr(up, "persistent-keepalive 25");
      up.kill("SIGKILL");
      expect((await up).signal).toBe("SIGKILL");
      expect(await leftoversOf(dirs, profile)).not.toEqual([]);

      const down = await vpnns(dirs, ["down", profile]);
      expect(down.exitCode, down.all).toBe(0);
      expect(down.stderr).toContain(`profile ${profile} is down`);
      expect(await leftoversOf(dirs, profile)).toEqual([]);
    });
  });
});
