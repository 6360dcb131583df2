/**
 * `vpnns systemd` and `vpnns up --retry-for` on a real machine without a running systemd.
 * `systemd-analyze verify` checks the unit files, and the template's ExecStart and ExecStop lines
 * run against the lab as systemd would run them. The drop-in's namespace and mounts are applied
 * with unshare and nsenter. Every unit goes to a temporary folder through VPNNS_SYSTEMD_DIR or
 * --unit-dir. Runs only inside test/sandbox.sh, and uses dist/ (npm run build first).
 */
import { execa } from "execa";
import { lstat, mkdir, mkdtemp, readFile, readlink, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it, test } from "vitest";
import type { Lab, LabClient } from "../../src/lab/lab.js";
import { interfaceName } from "../../src/core/names.js";
import { CLI, importClient, leftovers, makeDirs, PROBE, probeInside, sandboxed, seenAddress, SKIP_REASON, vpnns, type TestDirs } from "./helpers.js";
import { parseUnitFile, splitExecLine, unitValue, unitValues } from "../systemd-unit-file.js";

if (!sandboxed) test.skip(`systemd tests skipped: ${SKIP_REASON}`, () => {});

const SHIPPED_UNIT = fileURLToPath(new URL("../../systemd/vpnns@.service", import.meta.url));
const REPOSITORY = fileURLToPath(new URL("../../", import.meta.url));

/** PATH of services in systemd 252's system manager, built for a merged /usr or not (systemd.exec(5)). */
const SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Milliseconds a request that the kill-switch or the provider drops may take before it counts as failed. */
const UNREACHABLE_TIMEOUT_MS = 1500;

/**
 * Applies a drop-in's mounts and namespace to a command, as systemd does for a service with
 * BindReadOnlyPaths= and NetworkNamespacePath=. Usage, inside `unshare --mount`:
 * `node -e SCRIPT SPEC COMMAND...`, where SPEC is {"namespace": PATH, "binds": [[SOURCE, TARGET], ...]}.
 */
const DROP_IN_EXEC_SCRIPT = `
const { spawnSync } = require("node:child_process");
const { namespace, binds } = JSON.parse(process.argv[1]);
for (const [source, target] of binds) {
  const mounted = spawnSync("mount", ["--bind", "-o", "ro", source, target], { stdio: "inherit" });
  if (mounted.status !== 0) process.exit(125);
}
const result = spawnSync("nsenter", ["--net=" + namespace, "--", ...process.argv.slice(2)], { stdio: "inherit" });
process.exit(result.status ?? 1);
`;

/** Verify unit files; returns the exit code and the output lines that name the checked folder. */
async function verify(folder: string, units: string[]): Promise<{ exitCode: number | undefined; lines: string[]; all: string }> {
  const result = await execa("systemd-analyze", ["verify", ...units], { reject: false, all: true });
  if (result.code === "ENOENT") throw new Error("systemd-analyze not found: install the systemd package");
  // Units of the machine that the checked ones depend on may bring their own warnings.
  const lines = (result.all ?? "").split("\n").filter((line) => line.includes(folder) || /vpnns|dummy-daemon/.test(line));
  return { exitCode: result.exitCode, lines, all: result.all ?? "" };
}

async function ip(args: string[]): Promise<string> {
  return (await execa("ip", args)).stdout;
}

/** Return the name of the provider's link that has the lab's endpoint address. */
async function providerUplink(lab: Lab): Promise<string> {
  const [endpointAddress] = lab.endpoint4.split(":");
  const links = JSON.parse(await ip(["-n", lab.providerNamespace, "-j", "address", "show"])) as { ifname: string; addr_info: { local: string }[] }[];
  const link = links.find((entry) => entry.addr_info.some((address) => address.local === endpointAddress));
  if (!link) throw new Error(`no link in ${lab.providerNamespace} has ${endpointAddress}`);
  return link.ifname;
}

/** Resolve once a running process has written text to stderr; reject after timeoutMs. */
function stderrShows(child: ReturnType<typeof vpnns>, text: string, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => {
      child.stderr?.off("data", onData);
      reject(new Error(`no ${JSON.stringify(text)} on stderr within ${timeoutMs} ms; got: ${seen}`));
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString("utf8");
      if (!seen.includes(text)) return;
      clearTimeout(timer);
      child.stderr?.off("data", onData);
      resolve();
    };
    child.stderr?.on("data", onData);
  });
}

describe.runIf(sandboxed)("systemd", () => {
  let lab: Lab;
  let dirs: TestDirs;
  /** The unit folder that VPNNS_SYSTEMD_DIR names in every vpnns call. */
  let units: string;
  let client: LabClient;
  const profile = "sd-main";
  const other = "sd-other";

  function systemd(args: string[], env: Record<string, string> = {}) {
    return vpnns(dirs, ["systemd", ...args], { env: { VPNNS_SYSTEMD_DIR: units, ...env } });
  }

  async function readUnit(path: string) {
    return parseUnitFile(await readFile(path, "utf8"));
  }

  beforeAll(async () => {
    const labModule = (await import("../../dist/lab/lab.js")) as typeof import("../../src/lab/lab.js");
    lab = await labModule.createLab();
    dirs = await makeDirs("systemd");
    units = await mkdtemp("/run/vpnns/test-systemd-units-");
    client = await importClient(dirs, lab, profile);
    await importClient(dirs, lab, other);
  });

  afterAll(async () => {
    for (const name of [profile, other]) await vpnns(dirs, ["down", name]);
    await lab?.destroy();
  });

  describe("install", () => {
    it("writes the template", async () => {
      const result = await systemd(["install"]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stderr).toContain(`installed ${units}/vpnns@.service: it runs ${process.execPath} ${CLI}`);
      const entries = await readUnit(join(units, "vpnns@.service"));
      expect(splitExecLine(unitValue(entries, "Service", "ExecStart"), "x")).toEqual([
        process.execPath, CLI, "up", "x", "--retry-for", "120", "--handshake-timeout", "10",
      ]);
      expect(splitExecLine(unitValue(entries, "Service", "ExecStop"), "x")).toEqual([process.execPath, CLI, "down", "x"]);
    });

    it("copies the folder variables", async () => {
      const entries = await readUnit(join(units, "vpnns@.service"));
      expect(unitValues(entries, "Service", "Environment")).toEqual([`VPNNS_CONFIG_DIR=${dirs.configDir}`, `VPNNS_STATE_DIR=${dirs.stateDir}`]);
    });

    it("links the docs of this checkout", async () => {
      const entries = await readUnit(join(units, "vpnns@.service"));
      const docs = [join(REPOSITORY, "docs/systemd.md"), join(REPOSITORY, "README.md")].map((path) => pathToFileURL(path).href);
      expect(unitValue(entries, "Unit", "Documentation")).toBe(docs.join(" "));
    });

    it("changes nothing when current", async () => {
      const before = await lstat(join(units, "vpnns@.service"));
      const result = await systemd(["install"]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stderr).toContain("is already installed and current");
      expect((await lstat(join(units, "vpnns@.service"))).mtimeMs).toBe(before.mtimeMs);
    });

    it("updates an older template", async () => {
      const folder = await mkdtemp("/run/vpnns/test-systemd-update-");
      expect((await systemd(["install", "--unit-dir", folder, "--retry-for", "30"])).exitCode).toBe(0);
      const result = await systemd(["install", "--unit-dir", folder]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stderr).toContain(`updated ${folder}/vpnns@.service`);
      expect(result.stderr).toContain("run: systemctl daemon-reload");
      expect(unitValue(await readUnit(join(folder, "vpnns@.service")), "Service", "TimeoutStartSec")).toBe("190");
    });

    it("--unit-dir wins over the variable", async () => {
      const folder = join(await mkdtemp("/run/vpnns/test-systemd-option-"), "new", "system");
      const result = await systemd(["install", "--unit-dir", folder]);
      expect(result.exitCode, result.all).toBe(0);
      expect(await readdir(folder)).toEqual(["vpnns@.service"]);
    });

    it("--vpnns-path sets the command", async () => {
      const folder = await mkdtemp("/run/vpnns/test-systemd-path-");
      const result = await systemd(["install", "--unit-dir", folder, "--vpnns-path", "/opt/vpnns/bin/vpnns"]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stderr).toContain("warning: /opt/vpnns/bin/vpnns is not an executable file here");
      const start = unitValue(await readUnit(join(folder, "vpnns@.service")), "Service", "ExecStart");
      expect(splitExecLine(start, "x").slice(0, 3)).toEqual(["/opt/vpnns/bin/vpnns", "up", "x"]);
    });

    it("rejects a relative --vpnns-path", async () => {
      const result = await systemd(["install", "--vpnns-path", "bin/vpnns"]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain('invalid --vpnns-path "bin/vpnns": give an absolute path, such as /usr/bin/vpnns');
    });
  });

  describe("enable and disable", () => {
    const link = () => join(units, "multi-user.target.wants", `vpnns@${profile}.service`);

    it("enable links the instance", async () => {
      const result = await systemd(["enable", profile]);
      expect(result.exitCode, result.all).toBe(0);
      expect(await readlink(link())).toBe(join(units, "vpnns@.service"));
      expect(result.stderr).toContain(`to start it now, run: systemctl daemon-reload && systemctl start vpnns@${profile}.service`);
    });

    it("enable twice changes nothing", async () => {
      const result = await systemd(["enable", profile]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stderr).toContain(`vpnns@${profile}.service is already enabled`);
    });

    it("enable rejects an unknown profile", async () => {
      const result = await systemd(["enable", "sd-nope"]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain("profile sd-nope not found");
      expect(await readdir(join(units, "multi-user.target.wants"))).toEqual([`vpnns@${profile}.service`]);
    });

    it("enable needs the template", async () => {
      const folder = await mkdtemp("/run/vpnns/test-systemd-empty-");
      const result = await systemd(["enable", profile, "--unit-dir", folder]);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toContain(`vpnns@.service is not installed in ${folder}: run 'vpnns systemd install' first`);
      expect(await readdir(folder)).toEqual([]);
    });

    it("disable removes the link", async () => {
      const result = await systemd(["disable", profile]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stderr).toContain(`disabled vpnns@${profile}.service: removed ${link()}`);
      await expect(lstat(link())).rejects.toThrow(/ENOENT/);
      const again = await systemd(["disable", profile]);
      expect(again.exitCode, again.all).toBe(0);
      expect(again.stderr).toContain(`vpnns@${profile}.service is not enabled`);
    });
  });

  describe("attach and detach", () => {
    const dropIn = (service: string) => join(units, `${service}.d`, "vpnns.conf");

    it("attach writes the drop-in", async () => {
      const result = await systemd(["attach", "dummy-daemon", profile]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stderr).toContain(`dummy-daemon.service runs inside profile ${profile} from its next start`);
      expect(result.stderr).toContain("to apply it, run: systemctl daemon-reload && systemctl restart dummy-daemon.service");
      const entries = await readUnit(dropIn("dummy-daemon.service"));
      expect(unitValue(entries, "Unit", "BindsTo")).toBe(`vpnns@${profile}.service`);
      expect(unitValue(entries, "Service", "NetworkNamespacePath")).toBe(`/run/netns/vpnns-${profile}`);
    });

    it("attach twice changes nothing", async () => {
      const result = await systemd(["attach", "dummy-daemon.service", profile]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stderr).toContain(`dummy-daemon.service already runs inside profile ${profile}`);
    });

    it("attach moves to another profile", async () => {
      const result = await systemd(["attach", "moving.service", profile]);
      expect(result.exitCode, result.all).toBe(0);
      const moved = await systemd(["attach", "moving.service", other]);
      expect(moved.exitCode, moved.all).toBe(0);
      expect(moved.stderr).toContain(`moving.service moved from profile ${profile} to profile ${other}`);
      expect(unitValue(await readUnit(dropIn("moving.service")), "Unit", "BindsTo")).toBe(`vpnns@${other}.service`);
    });

    it.each([
      ["../etc/passwd", "give a unit name such as transmission-daemon.service, not a path"],
      ["dummy.socket", "only services can run inside a profile, and this names a socket unit"],
      ["getty@.service", "it is a template; give an instance, such as getty@NAME.service"],
      [`vpnns@${profile}`, "the vpnns@ units bring profiles up and cannot run inside one"],
      ["two words", 'with at most one "@" before an instance name'],
    ])("attach rejects %j", async (service, message) => {
      const result = await systemd(["attach", service, profile]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain(message);
    });

    it("attach rejects an unknown profile", async () => {
      const result = await systemd(["attach", "unknown-profile", "sd-nope"]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain("profile sd-nope not found");
      await expect(lstat(join(units, "unknown-profile.service.d"))).rejects.toThrow(/ENOENT/);
    });

    it("detach keeps other drop-ins", async () => {
      await mkdir(join(units, "keeper.service.d"));
      await writeFile(join(units, "keeper.service.d", "override.conf"), "[Service]\nNice=5\n");
      expect((await systemd(["attach", "keeper", profile])).exitCode).toBe(0);
      const result = await systemd(["detach", "keeper"]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stderr).toContain(`detached keeper.service from profile ${profile}: removed ${dropIn("keeper.service")}`);
      expect(await readdir(join(units, "keeper.service.d"))).toEqual(["override.conf"]);
    });

    it("detach removes an emptied folder", async () => {
      const result = await systemd(["detach", "moving"]);
      expect(result.exitCode, result.all).toBe(0);
      await expect(lstat(join(units, "moving.service.d"))).rejects.toThrow(/ENOENT/);
    });

    it("detach without drop-in is safe", async () => {
      const result = await systemd(["detach", "never-attached"]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stderr).toContain("never-attached.service is not attached to a profile");
    });

    it("detach rejects a path", async () => {
      const result = await systemd(["detach", "/etc/systemd/system/x.service"]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain("not a path");
    });
  });

  describe("systemd-analyze verify", () => {
    it("passes the installed template", async () => {
      const result = await verify(units, [join(units, "vpnns@.service")]);
      expect(result.lines).toEqual([]);
      expect(result.exitCode, result.all).toBe(0);
    });

    it("passes an enabled instance", async () => {
      expect((await systemd(["enable", profile])).exitCode).toBe(0);
      const result = await verify(units, [join(units, "multi-user.target.wants", `vpnns@${profile}.service`)]);
      expect(result.lines).toEqual([]);
      expect(result.exitCode, result.all).toBe(0);
    });

    it("passes the shipped template", async () => {
      // verify checks that ExecStart's program exists, so /usr/local/bin/vpnns gets a stand-in, on
      // a tmpfs in a mount namespace of this command alone.
      const folder = await mkdtemp("/run/vpnns/test-systemd-shipped-");
      await writeFile(join(folder, "vpnns@.service"), await readFile(SHIPPED_UNIT));
      const script = 'mount -t tmpfs vpnns-test /usr/local/bin && printf "#!/bin/sh\\n" > /usr/local/bin/vpnns && chmod 755 /usr/local/bin/vpnns && exec systemd-analyze verify "$1"';
      const result = await execa("unshare", ["--mount", "--propagation", "private", "--fork", "--kill-child", "--", "sh", "-c", script, "sh", join(folder, "vpnns@.service")], {
        reject: false,
        all: true,
      });
      expect(result.all).toBe("");
      expect(result.exitCode).toBe(0);
    });

    it("passes a service with the drop-in", async () => {
      await writeFile(join(units, "dummy-daemon.service"), "[Unit]\nDescription=Dummy daemon\n\n[Service]\nExecStart=/usr/bin/sleep infinity\n");
      const result = await verify(units, [join(units, "dummy-daemon.service")]);
      expect(result.lines).toEqual([]);
      expect(result.exitCode, result.all).toBe(0);
    });

    it("reads the drop-in folder", async () => {
      // The same service and drop-in without the template: verify fails on BindsTo=, which only the drop-in sets.
      const folder = await mkdtemp("/run/vpnns/test-systemd-no-template-");
      await mkdir(join(folder, "dummy-daemon.service.d"));
      await writeFile(join(folder, "dummy-daemon.service"), await readFile(join(units, "dummy-daemon.service")));
      await writeFile(join(folder, "dummy-daemon.service.d", "vpnns.conf"), await readFile(join(units, "dummy-daemon.service.d", "vpnns.conf")));
      const result = await verify(folder, [join(folder, "dummy-daemon.service")]);
      expect(result.all).toContain(`Unit vpnns@${profile}.service not found`);
      expect(result.exitCode).not.toBe(0);
    });
  });

  describe("unit commands against the lab", () => {
    /** The environment that systemd 252 gives a system service without User=, plus the unit's Environment=. */
    let serviceEnv: Record<string, string>;
    let execStart: string[];
    let execStop: string[];

    /** Run one of the unit's command lines as systemd does: fixed environment, no TTY, stdin from /dev/null, in /. */
    function runAsSystemd(argv: string[]) {
      const [file = "", ...args] = argv;
      return execa(file, args, { env: serviceEnv, extendEnv: false, stdin: "ignore", cwd: "/", reject: false, all: true, timeout: 60_000 });
    }

    /** Run a command with the drop-in's namespace and read-only DNS files, as systemd would start the attached service. */
    async function runLikeDropIn(command: string[]) {
      const entries = await readUnit(join(units, "dummy-daemon.service.d", "vpnns.conf"));
      const namespace = unitValue(entries, "Service", "NetworkNamespacePath");
      const binds = unitValue(entries, "Service", "BindReadOnlyPaths").split(" ").map((pair) => pair.split(":"));
      const spec = JSON.stringify({ namespace, binds });
      return execa("unshare", ["--mount", "--propagation", "private", "--fork", "--kill-child", "--", process.execPath, "-e", DROP_IN_EXEC_SCRIPT, spec, ...command], {
        reject: false,
        all: true,
        timeout: 30_000,
      });
    }

    beforeAll(async () => {
      const entries = await readUnit(join(units, "vpnns@.service"));
      const environment = unitValues(entries, "Service", "Environment").map((assignment) => {
        const equals = assignment.indexOf("=");
        return [assignment.slice(0, equals), assignment.slice(equals + 1)];
      });
      serviceEnv = { PATH: SYSTEMD_PATH, INVOCATION_ID: "0123456789abcdef0123456789abcdef", ...Object.fromEntries(environment) };
      execStart = splitExecLine(unitValue(entries, "Service", "ExecStart"), profile);
      execStop = splitExecLine(unitValue(entries, "Service", "ExecStop"), profile);
    });

    it("ExecStart brings the profile up", async () => {
      const result = await runAsSystemd(execStart);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stderr).toContain(`profile ${profile} is up: namespace vpnns-${profile}`);
      const inside = await probeInside(dirs, profile, `http://${lab.serviceAddress4}/`);
      expect(seenAddress(inside)).toBe(client.address4);
    });

    it("drop-in resolves through the profile", async () => {
      const result = await runLikeDropIn(["getent", "ahosts", lab.serviceName]);
      expect(result.exitCode, result.all).toBe(0);
      const addresses = new Set(result.stdout.split("\n").map((line) => line.split(/\s+/)[0]));
      expect([...addresses].sort()).toEqual([lab.serviceAddress6, lab.serviceAddress4].sort());
    });

    it("drop-in mounts the DNS files read-only", async () => {
      const resolvConf = await runLikeDropIn(["cat", "/etc/resolv.conf"]);
      expect(resolvConf.stdout).toContain(`nameserver ${lab.serviceAddress4}`);
      const nsswitch = await runLikeDropIn(["cat", "/etc/nsswitch.conf"]);
      expect(nsswitch.stdout).toMatch(/^hosts: files dns$/m);
      const written = await runLikeDropIn(["touch", "/etc/resolv.conf"]);
      expect(written.exitCode).not.toBe(0);
      expect(written.stderr).toContain("Read-only file system");
    });

    it("drop-in reaches the tunnel", async () => {
      const result = await runLikeDropIn([process.execPath, PROBE, `http://${lab.serviceAddress4}/`, "10000"]);
      expect(result.exitCode, result.all).toBe(0);
      expect(seenAddress(JSON.parse(result.stdout))).toBe(client.address4);
    });

    it("drop-in cannot reach the host side", async () => {
      const url = `http://${lab.hostAddress4}:${lab.hostHttpPort}/`;
      const fromHost = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      expect(fromHost.status).toBe(200);
      const result = await runLikeDropIn([process.execPath, PROBE, url, String(UNREACHABLE_TIMEOUT_MS)]);
      expect(result.exitCode, result.all).toBe(1);
      expect(JSON.parse(result.stdout).ok).toBe(false);
    });

    it("ExecStop takes the profile down", async () => {
      const result = await runAsSystemd(execStop);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stderr).toContain(`profile ${profile} is down`);
      expect(await leftovers(dirs, profile, interfaceName(profile))).toEqual([]);
    });
  });

  describe("up --retry-for", () => {
    /** Import a lab client as a profile whose Endpoint is replaced. */
    async function importWithEndpoint(name: string, endpoint: string): Promise<LabClient> {
      const late = await lab.addClient();
      const text = late.profileText.replace(/^Endpoint = .*$/m, `Endpoint = ${endpoint}`);
      const folder = await mkdtemp("/run/vpnns/conf-");
      await writeFile(join(folder, `${name}.conf`), text, { mode: 0o600 });
      const imported = await vpnns(dirs, ["profile", "import", join(folder, `${name}.conf`), "--name", name]);
      if (imported.exitCode !== 0) throw new Error(`import of ${name} failed: ${imported.all}`);
      return late;
    }

    function attemptLines(stderr: string, name: string): string[] {
      return stderr.split("\n").filter((line) => line.startsWith(`vpnns: failed to bring up profile ${name} (attempt `));
    }

    it("comes up once the endpoint address appears", async () => {
      const name = "sd-late-addr";
      const lateClient = await importWithEndpoint(name, "198.18.0.3:51820");
      const uplink = await providerUplink(lab);
      const up = vpnns(dirs, ["up", name, "--retry-for", "30", "--handshake-timeout", "1"]);
      try {
        await stderrShows(up, `failed to bring up profile ${name} (attempt 1)`);
        await ip(["-n", lab.providerNamespace, "address", "add", "198.18.0.3/24", "dev", uplink]);
        const result = await up;
        expect(result.exitCode, result.all).toBe(0);
        const attempts = attemptLines(result.stderr, name);
        expect(attempts[0]).toContain("(attempt 1): no WireGuard handshake with 198.18.0.3:51820");
        expect(attempts[0]).toMatch(/; next attempt in 1 s, at \d{4}-\d\d-\d\dT[\d:.]+Z$/);
        const inside = await probeInside(dirs, name, `http://${lab.serviceAddress4}/`);
        expect(seenAddress(inside)).toBe(lateClient.address4);
      } finally {
        up.kill();
        await vpnns(dirs, ["down", name]);
        await execa("ip", ["-n", lab.providerNamespace, "address", "del", "198.18.0.3/24", "dev", uplink], { reject: false });
      }
      expect(await leftovers(dirs, name, interfaceName(name))).toEqual([]);
    });

    it("comes up once the endpoint name resolves", async () => {
      const name = "sd-late-name";
      const hostName = "late-endpoint.vpnns.test";
      const lateClient = await importWithEndpoint(name, `${hostName}:51820`);
      // /etc is the sandbox's private overlay, and the file is restored below.
      const hosts = await readFile("/etc/hosts", "utf8");
      const up = vpnns(dirs, ["up", name, "--retry-for", "30", "--handshake-timeout", "2"]);
      try {
        await stderrShows(up, `failed to bring up profile ${name} (attempt 1)`);
        await writeFile("/etc/hosts", `${hosts}${lab.endpoint4.split(":")[0]} ${hostName}\n`);
        const result = await up;
        expect(result.exitCode, result.all).toBe(0);
        const attempts = attemptLines(result.stderr, name);
        expect(attempts[0]).toMatch(new RegExp(`\\(attempt 1\\): endpoint name resolution failed: [^:]+: \`${hostName}:51820'; next attempt in 1 s`));
        const inside = await probeInside(dirs, name, `http://${lab.serviceAddress4}/`);
        expect(seenAddress(inside)).toBe(lateClient.address4);
      } finally {
        up.kill();
        await writeFile("/etc/hosts", hosts);
        await vpnns(dirs, ["down", name]);
      }
    });

    it("fails after the retry time", async () => {
      const name = "sd-never";
      await importWithEndpoint(name, "198.18.0.4:51820");
      const started = Date.now();
      const result = await vpnns(dirs, ["up", name, "--retry-for", "5", "--handshake-timeout", "1"]);
      const elapsed = Date.now() - started;
      expect(result.exitCode, result.all).toBe(1);

      const attempts = attemptLines(result.stderr, name);
      expect(attempts.length).toBeGreaterThanOrEqual(1);
      attempts.forEach((line, index) => {
        expect(line).toContain(`(attempt ${index + 1}): no WireGuard handshake with 198.18.0.4:51820`);
      });
      const last = result.stderr.trim().split("\n").pop() ?? "";
      const expected = `^vpnns: failed to bring up profile ${name} after ${attempts.length + 1} attempts in [\\d.]+ s \\(retry time 5 s\\): `;
      expect(last).toMatch(new RegExp(`${expected}no WireGuard handshake with 198\\.18\\.0\\.4:51820`));
      expect(elapsed).toBeGreaterThanOrEqual(5000);
      // The last attempt starts at the latest at 5 s and waits 1 s for a handshake, plus setup and unwinding.
      expect(elapsed).toBeLessThan(15_000);
      expect(await leftovers(dirs, name, interfaceName(name))).toEqual([]);
    });

    it("SIGTERM between attempts stops", async () => {
      const name = "sd-stopped";
      await importWithEndpoint(name, "198.18.0.5:51820");
      const up = vpnns(dirs, ["up", name, "--retry-for", "60", "--handshake-timeout", "1"]);
      await stderrShows(up, `failed to bring up profile ${name} (attempt 1)`);
      const stopped = Date.now();
      up.kill("SIGTERM");
      const result = await up;
      expect(result.exitCode, result.all).toBe(143);
      expect(result.stderr).toContain(`retries of profile ${name} interrupted by SIGTERM while waiting for the next attempt`);
      expect(Date.now() - stopped).toBeLessThan(5000);
      expect(await leftovers(dirs, name, interfaceName(name))).toEqual([]);
    });

    it("does not retry a final error", async () => {
      const result = await vpnns(dirs, ["up", "sd-nope", "--retry-for", "30"]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain("profile sd-nope not found");
      expect(result.stderr).not.toContain("attempt");
    });

    it("rejects an invalid retry time", async () => {
      const result = await vpnns(dirs, ["up", profile, "--retry-for", "soon"]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain('expected a number of seconds from 0.1 to 3600, got "soon"');
    });
  });
});
