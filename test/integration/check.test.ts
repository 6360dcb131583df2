/**
 * `vpnns check` against the lab: every check passes on a healthy profile, and each one fails with
 * its fix when the thing it checks is broken by hand. Each break is undone before the next test,
 * often with the command the fix names, so the healthy profile is shared. Runs only inside
 * test/sandbox.sh, and imports the lab from dist/ (npm run build first).
 */
import { execa } from "execa";
import { chmod, mkdir, mkdtemp, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it, test } from "vitest";
import type { Lab, LabClient } from "../../src/lab/lab.js";
import type { CheckName, CheckReport, CheckResult } from "../../src/core/check.js";
import { CLI, SKIP_REASON, importClient, makeDirs, sandboxed, vpnns, type TestDirs } from "./helpers.js";

const ALL_CHECKS: CheckName[] = ["up", "interfaces", "kill-switch", "routes", "dns-files", "resolver-sockets", "handshake", "ipv6"];

/** A fake nscd: a Unix socket at the path glibc uses, which records every connection and closes it. */
const NSCD_DIR = "/run/nscd";
const NSCD_SOCKET = `${NSCD_DIR}/socket`;

async function command(argv: string[], input = ""): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const [file = "", ...args] = argv;
  const result = await execa(file, args, { reject: false, input });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

async function must(argv: string[]): Promise<string> {
  const result = await command(argv);
  if (result.exitCode !== 0) throw new Error(`'${argv.join(" ")}' failed with ${result.exitCode}: ${result.stderr}`);
  return result.stdout;
}

interface CheckRun {
  exitCode: number | undefined;
  report: CheckReport;
  output: string;
}

async function checkJson(dirs: TestDirs, profile: string, extra: string[] = []): Promise<CheckRun> {
  const result = await vpnns(dirs, ["check", profile, "--json", ...extra]);
  let report: CheckReport;
  try {
    report = JSON.parse(result.stdout) as CheckReport;
  } catch {
    throw new Error(`vpnns check ${profile} printed no JSON (exit ${result.exitCode}): ${result.all}`);
  }
  return { exitCode: result.exitCode, report, output: result.all };
}

function find(run: CheckRun, name: CheckName): CheckResult {
  const found = run.report.checks.find((check) => check.name === name);
  if (found === undefined) throw new Error(`check ${name} is missing from: ${run.output}`);
  return found;
}

function failedNames(run: CheckRun): CheckName[] {
  return run.report.checks.filter((check) => !check.ok).map((check) => check.name);
}

async function expectHealthy(dirs: TestDirs, profile: string): Promise<void> {
  const run = await checkJson(dirs, profile);
  expect(failedNames(run), run.output).toEqual([]);
  expect(run.exitCode).toBe(0);
}

async function upOrThrow(dirs: TestDirs, profile: string): Promise<void> {
  const result = await vpnns(dirs, ["up", profile]);
  if (result.exitCode !== 0) throw new Error(`vpnns up ${profile} failed: ${result.all}`);
}

/** Mount points at or below a folder, from this process's mountinfo, in mount order. */
async function mountsBelow(folder: string): Promise<string[]> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  return info
    .split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .filter((point) => point === folder || point.startsWith(`${folder}/`));
}

async function pathExists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** A script for `node -e SCRIPT PATH` that connects to a Unix socket and prints "connected" or the error code. */
const CONNECT_SCRIPT = `
const socket = require("node:net").connect({ path: process.argv[1] });
socket.on("connect", () => { process.stdout.write("connected"); process.exit(0); });
socket.on("error", (error) => { process.stdout.write(error.code); process.exit(0); });
`;

async function rebuild(dirs: TestDirs, profile: string): Promise<void> {
  for (const args of [["down", profile], ["up", profile]]) {
    const result = await vpnns(dirs, args);
    if (result.exitCode !== 0) throw new Error(`vpnns ${args.join(" ")} failed: ${result.all}`);
  }
}

/**
 * Listens on the nscd socket path and records each request, then closes the connection. Requests
 * carry the looked-up key, so lookups from inside can be told apart from vpnns's own user lookups.
 */
async function startFakeNscd(): Promise<{ server: Server; lookupsOf: (key: string) => number }> {
  await mkdir(NSCD_DIR, { recursive: true });
  await rm(NSCD_SOCKET, { force: true });
  const requests: string[] = [];
  const server = createServer((socket) => {
    socket.on("error", () => {});
    socket.once("data", (data: Buffer) => {
      requests.push(data.toString("latin1"));
      socket.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(NSCD_SOCKET, resolve));
  await chmod(NSCD_SOCKET, 0o666);
  return { server, lookupsOf: (key) => requests.filter((request) => request.includes(key)).length };
}

async function stopFakeNscd(server: Server): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(NSCD_DIR, { recursive: true, force: true });
}

if (!sandboxed) test.skip(`check tests skipped: ${SKIP_REASON}`, () => {});

describe.skipIf(!sandboxed)("vpnns check", () => {
  let lab: Lab;
  let dirs: TestDirs;
  let client: LabClient;
  const profile = "good";
  const namespace = `vpnns-${profile}`;
  const link = `vns-${profile}`;

  beforeAll(async () => {
    const labModule = (await import("../../dist/lab/lab.js")) as typeof import("../../src/lab/lab.js");
    lab = await labModule.createLab();
    dirs = await makeDirs("check");
    client = await importClient(dirs, lab, profile);
    await upOrThrow(dirs, profile);
  });

  afterAll(async () => {
    if (dirs) await vpnns(dirs, ["down", "--all"]);
    await lab?.destroy();
  });

  describe("healthy profile", () => {
    it("passes every check", async () => {
      const run = await checkJson(dirs, profile);
      expect(run.report.checks.map((check) => check.name)).toEqual(ALL_CHECKS);
      expect(failedNames(run), run.output).toEqual([]);
      expect(run.report.ok).toBe(true);
      expect(run.exitCode).toBe(0);
    });

    it("prints one line per check", async () => {
      const result = await vpnns(dirs, ["check", profile]);
      expect(result.exitCode).toBe(0);
      for (const name of ALL_CHECKS) expect(result.stdout).toMatch(new RegExp(`^  pass  ${name}: `, "m"));
      expect(result.stdout).toContain(`all ${ALL_CHECKS.length} checks passed`);
      expect(result.stdout).not.toContain("fix:");
    });

    it("JSON has name, ok, detail and fix", async () => {
      const run = await checkJson(dirs, profile);
      expect(Object.keys(run.report).sort()).toEqual(["checks", "ok", "probe", "profile"]);
      expect(run.report.profile).toBe(profile);
      expect(run.report.probe).toBeNull();
      for (const check of run.report.checks) {
        expect(Object.keys(check).sort()).toEqual(["detail", "fix", "name", "ok"]);
        expect(check.ok).toBe(true);
        expect(typeof check.detail).toBe("string");
        expect(check.detail.length).toBeGreaterThan(0);
        expect(check.fix).toBeNull();
      }
    });

    it("reports IPv6 as tunnelled", async () => {
      const run = await checkJson(dirs, profile);
      expect(find(run, "ipv6").detail).toContain(client.address6);
    });

    it("probe shows the tunnel address", async () => {
      const url = `http://${lab.serviceAddress4}/`;
      const run = await checkJson(dirs, profile, ["--probe", url]);
      const probe = find(run, "probe");
      expect(probe.ok, run.output).toBe(true);
      expect(probe.detail).toContain(`the server saw address ${client.address4}`);
      expect(run.report.probe?.seenAddress).toBe(client.address4);
      expect(run.report.probe?.status).toBe(200);
      expect(run.report.probe?.url).toBe(url);
      expect(run.exitCode).toBe(0);

      const text = await vpnns(dirs, ["check", profile, "--probe", url]);
      expect(text.stdout).toMatch(new RegExp(`^  pass  probe: HTTP 200 from ${url} as user root; the server saw address ${client.address4.replaceAll(".", "\\.")}$`, "m"));
    });

    it("probe runs as the sudo user", async () => {
      const env = { SUDO_UID: "65534", SUDO_GID: "65534" };
      const result = await vpnns(dirs, ["check", profile, "--json", "--probe", `http://${lab.serviceAddress4}/`], { env });
      const report = JSON.parse(result.stdout) as CheckReport;
      expect(report.probe?.user).toBe("nobody");
      expect(report.probe?.seenAddress, result.all).toBe(client.address4);
      expect(result.exitCode).toBe(0);
    });
  });

  describe("usage errors", () => {
    it("unknown profile exits with 2", async () => {
      const result = await vpnns(dirs, ["check", "nosuchprofile"]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain("profile nosuchprofile not found");
      expect(result.stdout).toBe("");
    });

    it("invalid profile name exits with 2", async () => {
      const result = await vpnns(dirs, ["check", "Bad/Name"]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain("invalid profile name");
    });

    for (const url of ["ftp://192.0.2.1/", "not a url", "192.0.2.1"]) {
      it(`probe URL ${JSON.stringify(url)} exits with 2`, async () => {
        const result = await vpnns(dirs, ["check", profile, "--probe", url]);
        expect(result.exitCode).toBe(2);
        expect(result.stderr).toContain("invalid --probe URL");
        expect(result.stdout).toBe("");
      });
    }

    it("missing profile argument exits with 2", async () => {
      const result = await vpnns(dirs, ["check"]);
      expect(result.exitCode).toBe(2);
    });
  });

  describe("profile not up", () => {
    it("fails and says to run vpnns up", async () => {
      await importClient(dirs, lab, "idle");
      const run = await checkJson(dirs, "idle");
      expect(run.exitCode).toBe(1);
      expect(run.report.ok).toBe(false);
      expect(run.report.checks).toHaveLength(1);
      const up = find(run, "up");
      expect(up.ok).toBe(false);
      expect(up.detail).toBe("profile idle is not up");
      expect(up.fix).toContain("vpnns up idle");
    });

    it("brings nothing up", async () => {
      await checkJson(dirs, "idle");
      expect(await must(["ip", "netns", "list"])).not.toContain("vpnns-idle");
    });
  });

  describe("broken by hand", () => {
    it("deleted nft table fails kill-switch", async () => {
      await must(["ip", "netns", "exec", namespace, "nft", "delete", "table", "inet", "vpnns"]);
      const run = await checkJson(dirs, profile);
      expect(run.exitCode).toBe(1);
      const killSwitch = find(run, "kill-switch");
      expect(killSwitch.ok).toBe(false);
      expect(killSwitch.detail).toContain("table inet vpnns is missing");
      expect(killSwitch.fix).toContain(`vpnns down ${profile}`);
      expect(find(run, "up").fix).toContain(`vpnns up ${profile}`);

      await rebuild(dirs, profile);
      await expectHealthy(dirs, profile);
    });

    it("accept-all rule fails kill-switch", async () => {
      await must(["ip", "netns", "exec", namespace, "nft", "add", "rule", "inet", "vpnns", "output", "accept"]);
      const run = await checkJson(dirs, profile);
      expect(run.exitCode).toBe(1);
      const killSwitch = find(run, "kill-switch");
      expect(killSwitch.ok).toBe(false);
      expect(killSwitch.detail).toContain("chain output has rules vpnns did not write: accept");
      expect(failedNames(run)).toEqual(["kill-switch"]);

      await rebuild(dirs, profile);
      await expectHealthy(dirs, profile);
    });

    it("accept policy fails kill-switch", async () => {
      await must(["ip", "netns", "exec", namespace, "nft", "add", "chain", "inet", "vpnns", "forward", "{ policy accept; }"]);
      const run = await checkJson(dirs, profile);
      expect(find(run, "kill-switch").detail).toContain("chain forward has policy accept, not drop");
      expect(run.exitCode).toBe(1);

      await rebuild(dirs, profile);
      await expectHealthy(dirs, profile);
    });

    it("veth inside fails interfaces", async () => {
      await must(["ip", "link", "add", "chkhost", "type", "veth", "peer", "name", "chkin", "netns", namespace]);
      const run = await checkJson(dirs, profile);
      expect(run.exitCode).toBe(1);
      const interfaces = find(run, "interfaces");
      expect(interfaces.ok).toBe(false);
      expect(interfaces.detail).toContain(`${namespace} also has chkin`);
      expect(interfaces.fix).toContain(`ip -n ${namespace} link delete chkin`);
      expect(failedNames(run)).toEqual(["interfaces"]);

      await must(["ip", "-n", namespace, "link", "delete", "chkin"]);
      await expectHealthy(dirs, profile);
    });

    it("route outside the tunnel fails routes", async () => {
      await must(["ip", "link", "add", "chkhost", "type", "veth", "peer", "name", "chkin", "netns", namespace]);
      await must(["ip", "-n", namespace, "link", "set", "chkin", "up"]);
      await must(["ip", "-n", namespace, "route", "add", "198.51.100.0/24", "dev", "chkin"]);
      const run = await checkJson(dirs, profile);
      expect(run.exitCode).toBe(1);
      const routes = find(run, "routes");
      expect(routes.ok).toBe(false);
      expect(routes.detail).toContain("198.51.100.0/24 dev chkin");
      expect(routes.fix).toContain(`ip -n ${namespace} route delete 198.51.100.0/24`);

      await must(["ip", "-n", namespace, "route", "delete", "198.51.100.0/24"]);
      const afterRoute = await checkJson(dirs, profile);
      expect(find(afterRoute, "routes").ok).toBe(true);
      await must(["ip", "-n", namespace, "link", "delete", "chkin"]);
      await expectHealthy(dirs, profile);
    });

    it("route in another table fails routes", async () => {
      await must(["ip", "link", "add", "chkhost", "type", "veth", "peer", "name", "chkin", "netns", namespace]);
      await must(["ip", "-n", namespace, "link", "set", "chkin", "up"]);
      await must(["ip", "-n", namespace, "-6", "route", "add", "2001:db8:99::/48", "dev", "chkin", "table", "100"]);
      const run = await checkJson(dirs, profile);
      const routes = find(run, "routes");
      expect(routes.ok).toBe(false);
      expect(routes.detail).toContain("2001:db8:99::/48 dev chkin table 100");
      expect(run.exitCode).toBe(1);

      await must(["ip", "-n", namespace, "link", "delete", "chkin"]);
      await expectHealthy(dirs, profile);
    });

    it("edited resolv.conf fails dns-files", async () => {
      const file = `/etc/netns/${namespace}/resolv.conf`;
      const original = await readFile(file, "utf8");
      await writeFile(file, `${original}nameserver 198.51.100.53\n`);
      try {
        const run = await checkJson(dirs, profile);
        expect(run.exitCode).toBe(1);
        const dns = find(run, "dns-files");
        expect(dns.ok).toBe(false);
        expect(dns.detail).toContain(`${file} differs from the profile's DNS settings (nameserver ${lab.serviceAddress4})`);
        expect(dns.detail).toContain("apps inside read a resolv.conf that is not the profile's");
        expect(dns.fix).toContain(`vpnns down ${profile}`);
        expect(failedNames(run)).toEqual(["dns-files"]);
      } finally {
        await writeFile(file, original);
      }
      await expectHealthy(dirs, profile);
    });

    it("resolve in nsswitch fails dns-files", async () => {
      const file = `/etc/netns/${namespace}/nsswitch.conf`;
      const original = await readFile(file, "utf8");
      await writeFile(file, original.replace(/^hosts:.*$/m, "hosts: files resolve dns"));
      try {
        const run = await checkJson(dirs, profile);
        const dns = find(run, "dns-files");
        expect(dns.ok).toBe(false);
        expect(dns.detail).toContain('has hosts line "files resolve dns", not "files dns"');
        expect(run.exitCode).toBe(1);
      } finally {
        await writeFile(file, original);
      }
      await expectHealthy(dirs, profile);
    });

    it("missing DNS folder fails dns-files", async () => {
      const folder = `/etc/netns/${namespace}`;
      const resolv = await readFile(`${folder}/resolv.conf`, "utf8");
      const nsswitch = await readFile(`${folder}/nsswitch.conf`, "utf8");
      await rm(folder, { recursive: true });
      try {
        const run = await checkJson(dirs, profile);
        const dns = find(run, "dns-files");
        expect(dns.ok).toBe(false);
        expect(dns.detail).toContain(`${folder}/resolv.conf is missing`);
        expect(run.exitCode).toBe(1);
      } finally {
        await mkdir(folder, { recursive: true });
        await writeFile(`${folder}/resolv.conf`, resolv);
        await writeFile(`${folder}/nsswitch.conf`, nsswitch);
      }
      await expectHealthy(dirs, profile);
    });

    it("no mount namespace fails resolver-sockets", async () => {
      const nscd = await startFakeNscd();
      try {
        // Without the namespace file, apps start through `ip netns exec`, as under an older vpnns.
        await must(["umount", `${dirs.stateDir}/${profile}/mounts/mnt`]);
        const run = await checkJson(dirs, profile);
        expect(run.exitCode).toBe(1);
        const sockets = find(run, "resolver-sockets");
        expect(sockets.ok).toBe(false);
        expect(sockets.detail).toContain(`${NSCD_SOCKET} and /var/run/nscd/socket accept connections from inside`);
        expect(sockets.detail).toContain("glibc asks nscd before it reads nsswitch.conf");
        expect(sockets.fix).toContain(`vpnns down ${profile}`);
        expect(failedNames(run)).toEqual(["resolver-sockets"]);

        await rebuild(dirs, profile);
        await expectHealthy(dirs, profile);
      } finally {
        await stopFakeNscd(nscd.server);
      }
      await expectHealthy(dirs, profile);
    });

    it("nscd started after up is covered", async () => {
      const nscd = await startFakeNscd();
      try {
        await expectHealthy(dirs, profile);
        const result = await vpnns(dirs, ["run", "--profile", profile, "--", "getent", "ahosts", "leaktest.example"]);
        expect(result.exitCode, result.all).toBe(2);
        expect(nscd.lookupsOf("leaktest.example")).toBe(0);
      } finally {
        await stopFakeNscd(nscd.server);
      }
    });

    it("replaced resolv.conf is bound again", async () => {
      // Tools such as NetworkManager replace /etc/resolv.conf by a rename, which detaches the bind
      // mount on the old file in the apps' mount namespace.
      const original = await readFile("/etc/resolv.conf", "utf8");
      const replace = async (text: string) => {
        await writeFile("/etc/resolv.conf.check-new", text);
        await rename("/etc/resolv.conf.check-new", "/etc/resolv.conf");
      };
      await replace("nameserver 198.51.100.53\n");
      try {
        const result = await vpnns(dirs, ["run", "--profile", profile, "--", "cat", "/etc/resolv.conf"]);
        expect(result.exitCode, result.all).toBe(0);
        expect(result.stdout).toContain(`nameserver ${lab.serviceAddress4}`);
        expect(result.stdout).not.toContain("198.51.100.53");
      } finally {
        await replace(original);
      }
      await expectHealthy(dirs, profile);
    });

    it("ip netns exec reaches a listening nscd", async () => {
      // Shows the leak that the mount namespace of apps closes: with "hosts: files dns" in the
      // namespace's nsswitch.conf, glibc still sends the lookup to the nscd socket first.
      const nscd = await startFakeNscd();
      try {
        const result = await command(["ip", "netns", "exec", namespace, "getent", "ahosts", "leaktest.example"]);
        expect(result.exitCode).not.toBe(0);
        expect(nscd.lookupsOf("leaktest.example")).toBeGreaterThan(0);
      } finally {
        await stopFakeNscd(nscd.server);
      }
    });

    it("vpnns run hides a listening nscd", async () => {
      const nscd = await startFakeNscd();
      try {
        await rebuild(dirs, profile);
        const result = await vpnns(dirs, ["run", "--profile", profile, "--", "getent", "ahosts", "leaktest.example"]);
        expect(result.exitCode, result.all).toBe(2);
        expect(nscd.lookupsOf("leaktest.example")).toBe(0);
        const ls = await vpnns(dirs, ["run", "--profile", profile, "--", "ls", "-A", NSCD_DIR]);
        expect(ls.exitCode, ls.all).toBe(0);
        expect(ls.stdout).toBe("");
      } finally {
        await stopFakeNscd(nscd.server);
      }
      await expectHealthy(dirs, profile);
    });

    it("missing tunnel IPv6 address fails ipv6", async () => {
      await must(["ip", "-n", namespace, "address", "delete", `${client.address6}/128`, "dev", link]);
      const run = await checkJson(dirs, profile);
      expect(run.exitCode).toBe(1);
      const ipv6 = find(run, "ipv6");
      expect(ipv6.ok).toBe(false);
      expect(ipv6.detail).toContain(`IPv6 address ${client.address6} is missing from ${link}`);
      expect(ipv6.fix).toContain(`vpnns down ${profile}`);
      expect(failedNames(run)).toEqual(["ipv6"]);

      await must(["ip", "-n", namespace, "address", "add", `${client.address6}/128`, "dev", link]);
      await expectHealthy(dirs, profile);
    });

    it("unanswered peer fails handshake", async () => {
      // Re-adding the peer clears its latest handshake; the new endpoint's port has no WireGuard.
      const wg = ["ip", "netns", "exec", namespace, "wg", "set", link, "peer"];
      const dump = await must(["ip", "netns", "exec", namespace, "wg", "show", link, "dump"]);
      const peerKey = dump.split("\n")[1]!.split("\t")[0]!;
      const deadEndpoint = lab.endpoint4.replace(/:\d+$/, ":9");
      await must([...wg, peerKey, "remove"]);
      await must([...wg, peerKey, "endpoint", deadEndpoint, "allowed-ips", "0.0.0.0/0,::/0"]);
      const run = await checkJson(dirs, profile);
      expect(run.exitCode).toBe(1);
      const handshake = find(run, "handshake");
      expect(handshake.ok).toBe(false);
      expect(handshake.detail).toContain("there was none since the profile came up");
      expect(handshake.fix).toContain("over UDP");
      expect(failedNames(run)).toEqual(["handshake"]);

      // With the provider's endpoint back, the check provokes a new handshake and passes.
      await must([...wg, peerKey, "endpoint", lab.endpoint4]);
      await expectHealthy(dirs, profile);
    });
  });

  describe("IPv4-only profile", () => {
    const v4 = "vfour";

    beforeAll(async () => {
      await importClient(dirs, lab, v4, { ipv6: false });
      await upOrThrow(dirs, v4);
    });

    it("reports IPv6 as blocked", async () => {
      const run = await checkJson(dirs, v4);
      const ipv6 = find(run, "ipv6");
      expect(ipv6.ok, run.output).toBe(true);
      expect(ipv6.detail).toContain("IPv6 is blocked");
      expect(run.exitCode).toBe(0);
    });

    it("removed IPv6 drop fails ipv6", async () => {
      const listing = await must(["ip", "netns", "exec", `vpnns-${v4}`, "nft", "-a", "list", "chain", "inet", "vpnns", "output"]);
      const handle = /meta nfproto ipv6 drop # handle (\d+)/.exec(listing)?.[1];
      expect(handle, listing).toBeDefined();
      await must(["ip", "netns", "exec", `vpnns-${v4}`, "nft", "delete", "rule", "inet", "vpnns", "output", "handle", handle!]);
      const run = await checkJson(dirs, v4);
      const ipv6 = find(run, "ipv6");
      expect(ipv6.ok).toBe(false);
      expect(ipv6.detail).toContain("does not drop IPv6");
      expect(find(run, "kill-switch").detail).toContain("chain output lacks the rules meta nfproto ipv6 drop");
      expect(run.exitCode).toBe(1);

      await rebuild(dirs, v4);
      await expectHealthy(dirs, v4);
    });
  });

  describe("mount namespace of apps", () => {
    it("down removes its mounts", async () => {
      const other = "mounts";
      await importClient(dirs, lab, other);
      await upOrThrow(dirs, other);
      const folder = `${dirs.stateDir}/${other}/mounts`;
      expect(await mountsBelow(folder)).toEqual([folder, `${folder}/mnt`]);

      const down = await vpnns(dirs, ["down", other]);
      expect(down.exitCode, down.all).toBe(0);
      expect(await mountsBelow(folder)).toEqual([]);
      expect(await pathExists(`${dirs.stateDir}/${other}`)).toBe(false);
    });

    it("apps see the namespace's sysfs", async () => {
      const result = await vpnns(dirs, ["run", "--profile", profile, "--", "ls", "/sys/class/net"]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stdout.split("\n").sort()).toEqual(["lo", link].sort());
    });

    it("apps start in the caller's folder", async () => {
      const folder = await mkdtemp("/run/vpnns/check-cwd-");
      const result = await execa(process.execPath, [CLI, "run", "--profile", profile, "--", "pwd"], {
        reject: false,
        cwd: folder,
        env: { VPNNS_CONFIG_DIR: dirs.configDir, VPNNS_STATE_DIR: dirs.stateDir },
      });
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stdout).toBe(folder);
    });
  });

  describe("host with systemd-resolved", () => {
    const other = "resolved";
    const resolveDir = "/run/systemd/resolve";
    let originalResolvConf: string;
    let varlink: Server | undefined;
    let varlinkConnections = 0;

    beforeAll(async () => {
      // Play a host whose /etc/resolv.conf links to systemd-resolved's stub file, with its Varlink
      // socket listening. The sandbox's /etc and /run are private overlays.
      if (await pathExists(resolveDir)) throw new Error(`${resolveDir} exists in the sandbox; this test needs to create it`);
      originalResolvConf = await readFile("/etc/resolv.conf", "utf8");
      await mkdir(resolveDir, { recursive: true });
      await writeFile(`${resolveDir}/stub-resolv.conf`, "nameserver 198.51.100.53\n");
      varlink = createServer((socket) => {
        varlinkConnections += 1;
        socket.destroy();
      });
      await new Promise<void>((resolve) => varlink!.listen(`${resolveDir}/io.systemd.Resolve`, resolve));
      await rm("/etc/resolv.conf");
      await symlink("../run/systemd/resolve/stub-resolv.conf", "/etc/resolv.conf");
      await importClient(dirs, lab, other);
      await upOrThrow(dirs, other);
    });

    afterAll(async () => {
      await vpnns(dirs, ["down", other]);
      await rm("/etc/resolv.conf", { force: true });
      await writeFile("/etc/resolv.conf", originalResolvConf);
      if (varlink) await new Promise<void>((resolve) => varlink!.close(() => resolve()));
      await rm(resolveDir, { recursive: true, force: true });
    });

    it("host socket is reachable without the cover", async () => {
      const result = await command(["ip", "netns", "exec", `vpnns-${other}`, process.execPath, "-e", CONNECT_SCRIPT, `${resolveDir}/io.systemd.Resolve`]);
      expect(result.stdout).toBe("connected");
    });

    it("passes every check", async () => {
      const run = await checkJson(dirs, other);
      expect(failedNames(run), run.output).toEqual([]);
      expect(find(run, "resolver-sockets").detail).toContain(`${resolveDir}/io.systemd.Resolve: ENOENT`);
      expect(run.exitCode).toBe(0);
    });

    it("apps read the profile's resolv.conf", async () => {
      const result = await vpnns(dirs, ["run", "--profile", other, "--", "cat", "/etc/resolv.conf"]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stdout).toContain(`nameserver ${lab.serviceAddress4}`);
      expect(result.stdout).not.toContain("198.51.100.53");
    });

    it("apps do not reach resolved", async () => {
      varlinkConnections = 0;
      const result = await vpnns(dirs, ["run", "--profile", other, "--", process.execPath, "-e", CONNECT_SCRIPT, `${resolveDir}/io.systemd.Resolve`]);
      expect(result.stdout, result.all).toBe("ENOENT");
      expect(varlinkConnections).toBe(0);
    });
  });

  describe("provider stopped", () => {
    it("fails probe and handshake", async () => {
      await lab.cutTunnel();
      // Re-adding the peer clears its latest handshake, which would otherwise stay recent for minutes.
      const wg = ["ip", "netns", "exec", namespace, "wg", "set", link, "peer"];
      const dump = await must(["ip", "netns", "exec", namespace, "wg", "show", link, "dump"]);
      const peerKey = dump.split("\n")[1]!.split("\t")[0]!;
      await must([...wg, peerKey, "remove"]);
      await must([...wg, peerKey, "endpoint", lab.endpoint4, "allowed-ips", "0.0.0.0/0,::/0"]);

      const run = await checkJson(dirs, profile, ["--probe", `http://${lab.serviceAddress4}/`]);
      expect(run.exitCode).toBe(1);
      expect(find(run, "handshake").ok).toBe(false);
      const probe = find(run, "probe");
      expect(probe.ok).toBe(false);
      expect(probe.detail).toContain(`fetching http://${lab.serviceAddress4}/ from inside as user root failed`);
      expect(run.report.probe?.seenAddress).toBeNull();
      expect(failedNames(run)).toEqual(["handshake", "probe"]);
    });

    it("cleanup removes every mount", async () => {
      // The state record goes missing, as after a crash: cleanup finds the profile by its namespace.
      await rm(`${dirs.stateDir}/${profile}/state.json`);
      const result = await vpnns(dirs, ["cleanup"]);
      expect(result.exitCode, result.all).toBe(0);
      expect(await mountsBelow(dirs.stateDir)).toEqual([]);
      expect(await must(["ip", "netns", "list"])).not.toContain("vpnns-");
    });
  });
});
