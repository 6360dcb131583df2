/**
 * `vpnns run` end to end, against the lab: real namespaces, wireguard-go, nftables and processes.
 * Covers traffic and DNS through the tunnel, the kill-switch, a tunnel lost while an app runs, the
 * user the app runs as, exit codes, signals and stdio, and when `run` brings a profile up and down.
 * Runs only inside test/sandbox.sh, and imports the lab from dist/ (npm run build first).
 */
import { execa, type ResultPromise } from "execa";
import { mkdtemp, stat, writeFile } from "node:fs/promises";
import { constants as osConstants } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, afterEach, beforeAll, describe, expect, it, test } from "vitest";
import type { Lab, LabClient } from "../../src/lab/lab.js";
import type { ProfileReport } from "../../src/core/status.js";
import { interfaceName, namespaceName } from "../../src/core/names.js";
import { CLI, importClient, leftovers, makeDirs, PROBE, probeInside, sandboxed, seenAddress, SKIP_REASON, vpnns, waitFor, wireguardGoPids, type TestDirs } from "./helpers.js";

/** Milliseconds to wait for a request that must fail, because the tunnel or the provider drops it silently. */
const UNREACHABLE_TIMEOUT_MS = 1500;
/** Milliseconds to wait for a request that must succeed, including the WireGuard handshake. */
const REACHABLE_TIMEOUT_MS = 10_000;
/** Milliseconds to wait for a line from an app that runs under `vpnns run`. */
const LINE_TIMEOUT_MS = 20_000;
/** Milliseconds for a signal sent to vpnns to reach its app. */
const SIGNAL_TIMEOUT_MS = 5000;

/** The user that the identity tests create in the sandbox's private /etc. */
const TEST_USER = "vpnnstestuser";

/**
 * An app for `node -e`: after "ready", it tries every target of the JSON object in argv[1] each
 * time a line arrives on stdin, and prints one JSON line that maps each key to "ok" or the error.
 * A target "dns:NAME" resolves NAME with getaddrinfo, which reads the namespace's resolv.conf.
 */
const PROBER_APP = `
const [targetsJson, timeoutText] = process.argv.slice(1);
const targets = JSON.parse(targetsJson);
const dns = require("node:dns/promises");
async function attempt(target) {
  try {
    if (target.startsWith("dns:")) {
      const addresses = await dns.lookup(target.slice(4), { all: true });
      return "ok " + addresses.map((entry) => entry.address).sort().join(",");
    }
    const response = await fetch(target, { signal: AbortSignal.timeout(Number(timeoutText)) });
    await response.text();
    return "ok";
  } catch (error) {
    const code = error.cause?.code ?? error.code;
    return "failed: " + (typeof code === "string" ? code : error.name);
  }
}
const input = require("node:readline").createInterface({ input: process.stdin });
input.on("line", async () => {
  const results = {};
  for (const [key, target] of Object.entries(targets)) results[key] = await attempt(target);
  process.stdout.write(JSON.stringify(results) + "\\n");
});
// An aborted connection attempt would keep Node alive for seconds after stdin closes.
input.on("close", () => process.exit(0));
process.stdout.write("ready\\n");
`;

/** An app for `node -e`: prints "ready", then on SIGTERM, SIGINT or SIGHUP prints "received NAME" and exits with 100 + the signal number. */
const SIGNAL_APP = `
const { signals } = require("node:os").constants;
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) {
  process.on(signal, () => {
    process.stdout.write("received " + signal + "\\n");
    process.exit(100 + signals[signal]);
  });
}
setInterval(() => {}, 1000);
process.stdout.write("ready\\n");
`;

/** A shell script that prints the identity it runs with as key=value lines. */
const IDENTITY_SCRIPT = [
  'echo "uid=$(id -u)"',
  'echo "gid=$(id -g)"',
  'echo "groups=$(id -G)"',
  'echo "home=$HOME"',
  'echo "user=$USER"',
  'echo "logname=$LOGNAME"',
  'echo "sudo=$(env | grep -c "^SUDO_")"',
].join("; ");

// ---------------------------------------------------------------------------------------------
// Helpers

/** Runs `vpnns run --profile PROFILE [FLAGS] -- COMMAND...` and returns its result, even for a non-zero exit. */
function runIn(dirs: TestDirs, profile: string, command: string[], options: { flags?: string[]; env?: Record<string, string>; input?: string } = {}) {
  return vpnns(dirs, ["run", "--profile", profile, ...(options.flags ?? []), "--", ...command], { env: options.env, input: options.input });
}

/** A `vpnns run` that keeps running while the test reads its app's stdout line by line. */
interface RunningApp {
  subprocess: ResultPromise<{ reject: false; stdin: "pipe"; forceKillAfterDelay: false }>;
  /** Resolves with the next line of stdout, or rejects after timeoutMs or once stdout ends. */
  nextLine(timeoutMs?: number): Promise<string>;
  /** Stderr of vpnns and the app so far, for failure messages. */
  stderr(): string;
}

function startRun(dirs: TestDirs, profile: string, command: string[]): RunningApp {
  const subprocess = execa(process.execPath, [CLI, "run", "--profile", profile, "--", ...command], {
    reject: false,
    stdin: "pipe",
    timeout: 120_000,
    forceKillAfterDelay: false,
    env: { VPNNS_CONFIG_DIR: dirs.configDir, VPNNS_STATE_DIR: dirs.stateDir },
  });
  let stderr = "";
  subprocess.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  const lines = createInterface({ input: subprocess.stdout })[Symbol.asyncIterator]();
  const nextLine = async (timeoutMs = LINE_TIMEOUT_MS): Promise<string> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no line from the app within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const next = await Promise.race([lines.next(), timeout]);
      if (next.done) throw new Error(`stdout of the app ended; stderr: ${stderr}`);
      return next.value;
    } finally {
      clearTimeout(timer);
    }
  };
  return { subprocess, nextLine, stderr: () => stderr };
}

async function statusOf(dirs: TestDirs, profile: string): Promise<ProfileReport> {
  const result = await vpnns(dirs, ["status", profile, "--json"]);
  if (result.exitCode !== 0) throw new Error(`vpnns status ${profile} failed: ${result.all}`);
  return JSON.parse(result.stdout) as ProfileReport;
}

async function vpnnsUp(dirs: TestDirs, profile: string): Promise<void> {
  const result = await vpnns(dirs, ["up", profile]);
  if (result.exitCode !== 0) throw new Error(`vpnns up ${profile} failed: ${result.all}`);
}

async function vpnnsDown(dirs: TestDirs, profile: string): Promise<void> {
  const result = await vpnns(dirs, ["down", profile]);
  if (result.exitCode !== 0) throw new Error(`vpnns down ${profile} failed: ${result.all}`);
}

async function command(argv: string[], input = ""): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const [file = "", ...args] = argv;
  const result = await execa(file, args, { reject: false, input });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Lines of `ip netns list` that name this namespace. */
async function namespaceEntries(namespace: string): Promise<string[]> {
  const { stdout } = await command(["ip", "netns", "list"]);
  return stdout.split("\n").filter((line) => line.split(" ")[0] === namespace);
}

async function pathExists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Parses key=value lines, as IDENTITY_SCRIPT prints them. */
function parseKeyValues(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const separator = line.indexOf("=");
    if (separator > 0) values[line.slice(0, separator)] = line.slice(separator + 1);
  }
  return values;
}

function sortedNumbers(text: string): number[] {
  return text
    .trim()
    .split(/\s+/)
    .map(Number)
    .sort((a, b) => a - b);
}

/** Packet counts on the lab's uplink, as UplinkMonitor reads them. */
interface UplinkCounts {
  /** WireGuard UDP from the host side to the provider's endpoint port. */
  wireguardOut: number;
  /** WireGuard UDP from the provider's endpoint port to the host side. */
  wireguardIn: number;
  /**
   * Any other IP packet leaving or arriving on the uplink, except IPv6 neighbour discovery and MLD,
   * and ICMP port unreachable for a WireGuard packet of the provider.
   */
  otherOut: number;
  otherIn: number;
  /** Packets anywhere in the sandbox's namespace with a profile's tunnel address as source or destination. */
  profileAddress: number;
  /** `nft list set` output of the source, destination and protocol of the "other" packets, for failure messages. */
  otherPackets: string;
}

/**
 * nftables counters in the sandbox's own namespace, which plays the user's host. They count what
 * crosses the uplink to the provider, and any packet there with a profile's tunnel address. The
 * table is separate from everything vpnns makes, and remove() deletes it.
 */
class UplinkMonitor {
  static readonly TABLE = "vpnnsruntest";

  constructor(
    private readonly lab: Lab,
    private readonly clients: LabClient[],
  ) {}

  async install(): Promise<void> {
    const result = await command(["nft", "-f", "-"], this.renderRuleset());
    if (result.exitCode !== 0) throw new Error(`failed to add nft table ${UplinkMonitor.TABLE}: ${result.stderr}`);
  }

  private renderRuleset(): string {
    const uplink = JSON.stringify(this.lab.uplinkInterface);
    const separator = this.lab.endpoint4.lastIndexOf(":");
    const endpointAddress = this.lab.endpoint4.slice(0, separator);
    const endpointPort = this.lab.endpoint4.slice(separator + 1);

    const profileRules = this.clients.flatMap((client) => [
      `    ip saddr ${client.address4} counter name profile_address`,
      `    ip daddr ${client.address4} counter name profile_address`,
      `    ip6 saddr ${client.address6} counter name profile_address`,
      `    ip6 daddr ${client.address6} counter name profile_address`,
    ]);

    // The kernel sends neighbour discovery and MLD on the link by itself, with no app involved.
    const linkLocal = "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report } return";
    // The provider keeps sending to clients whose profile went down, such as TCP retransmissions of
    // its HTTP service, and the host replies with ICMP port unreachable. That error quotes the
    // provider's WireGuard packet, whose UDP source port lies 28 bytes (224 bits) into the ICMP
    // header, after 8 bytes of ICMP and a 20-byte IPv4 header.
    const wireguardError = `ip daddr ${endpointAddress} icmp type destination-unreachable @th,224,16 ${endpointPort} counter name wireguard_error return`;

    return [
      `table inet ${UplinkMonitor.TABLE} {`,
      "  counter wireguard_out {}",
      "  counter wireguard_in {}",
      "  counter other_out {}",
      "  counter other_in {}",
      "  counter wireguard_error {}",
      "  counter profile_address {}",
      "  set other4 { typeof ip saddr . ip daddr . meta l4proto; flags dynamic; }",
      "  set other6 { typeof ip6 saddr . ip6 daddr . meta l4proto; flags dynamic; }",
      "  chain arriving {",
      "    type filter hook prerouting priority -300; policy accept;",
      ...profileRules,
      `    iifname != ${uplink} return`,
      `    ip saddr ${endpointAddress} udp sport ${endpointPort} counter name wireguard_in return`,
      `    ${linkLocal}`,
      "    counter name other_in",
      "    add @other4 { ip saddr . ip daddr . meta l4proto }",
      "    add @other6 { ip6 saddr . ip6 daddr . meta l4proto }",
      "  }",
      "  chain leaving {",
      "    type filter hook postrouting priority 300; policy accept;",
      ...profileRules,
      `    oifname != ${uplink} return`,
      `    ip daddr ${endpointAddress} udp dport ${endpointPort} counter name wireguard_out return`,
      `    ${wireguardError}`,
      `    ${linkLocal}`,
      "    counter name other_out",
      "    add @other4 { ip saddr . ip daddr . meta l4proto }",
      "    add @other6 { ip6 saddr . ip6 daddr . meta l4proto }",
      "  }",
      "}",
      "",
    ].join("\n");
  }

  /** Sets every counter to zero and empties the sets. */
  async reset(): Promise<void> {
    const table = `inet ${UplinkMonitor.TABLE}`;
    const result = await command(["nft", "-f", "-"], `reset counters table ${table}\nflush set ${table} other4\nflush set ${table} other6\n`);
    if (result.exitCode !== 0) throw new Error(`failed to reset nft table ${UplinkMonitor.TABLE}: ${result.stderr}`);
  }

  async read(): Promise<UplinkCounts> {
    const listed = await command(["nft", "-j", "list", "counters", "table", "inet", UplinkMonitor.TABLE]);
    if (listed.exitCode !== 0) throw new Error(`failed to list the counters of ${UplinkMonitor.TABLE}: ${listed.stderr}`);
    const packets = new Map<string, number>();
    for (const entry of (JSON.parse(listed.stdout) as { nftables: { counter?: { name: string; packets: number } }[] }).nftables) {
      if (entry.counter) packets.set(entry.counter.name, entry.counter.packets);
    }
    const sets = await command(["sh", "-c", `nft list set inet ${UplinkMonitor.TABLE} other4; nft list set inet ${UplinkMonitor.TABLE} other6`]);
    return {
      wireguardOut: packets.get("wireguard_out") ?? -1,
      wireguardIn: packets.get("wireguard_in") ?? -1,
      otherOut: packets.get("other_out") ?? -1,
      otherIn: packets.get("other_in") ?? -1,
      profileAddress: packets.get("profile_address") ?? -1,
      otherPackets: sets.stdout,
    };
  }

  async remove(): Promise<void> {
    await command(["nft", "delete", "table", "inet", UplinkMonitor.TABLE]);
  }
}

/**
 * Creates TEST_USER with the audio and video groups unless it exists. The sandbox's /etc is a
 * private overlay, and the home folder goes to the sandbox's private /run/vpnns tmpfs, so the
 * machine's /etc and /home stay unchanged. --no-log-init leaves /var/log/lastlog and faillog alone.
 * Call it only after createLab(), which throws unless the mount namespace is private.
 */
async function ensureTestUser(): Promise<void> {
  if ((await command(["getent", "passwd", TEST_USER])).exitCode === 0) return;
  const result = await command([
    "useradd", "--create-home", "--home-dir", `/run/vpnns/home-${TEST_USER}`, "--no-log-init", "--groups", "audio,video", TEST_USER,
  ]);
  if (result.exitCode !== 0) throw new Error(`useradd ${TEST_USER} failed: ${result.stderr}`);
}

interface PasswdEntry {
  uid: number;
  gid: number;
  home: string;
}

async function passwdEntry(name: string): Promise<PasswdEntry> {
  const { stdout } = await command(["getent", "passwd", name]);
  const fields = stdout.trim().split(":");
  return { uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] ?? "" };
}

async function groupId(name: string): Promise<number> {
  const { stdout } = await command(["getent", "group", name]);
  return Number(stdout.trim().split(":")[2]);
}

// ---------------------------------------------------------------------------------------------
// Tests

if (!sandboxed) test.skip(`run tests skipped: ${SKIP_REASON}`, () => {});

describe.skipIf(!sandboxed)("vpnns run", () => {
  let lab: Lab;
  let dirs: TestDirs;

  beforeAll(async () => {
    const labModule = (await import("../../dist/lab/lab.js")) as typeof import("../../src/lab/lab.js");
    lab = await labModule.createLab();
    dirs = await makeDirs("run");
  });

  afterAll(async () => {
    if (dirs) await vpnns(dirs, ["down", "--all"]);
    await lab?.destroy();
  });

  describe("traffic through the tunnel", () => {
    const profile = "net";
    let client: LabClient;

    beforeAll(async () => {
      client = await importClient(dirs, lab, profile);
      await vpnnsUp(dirs, profile);
    });

    afterAll(async () => {
      await vpnnsDown(dirs, profile);
    });

    it("reaches the service over IPv4", async () => {
      const result = await probeInside(dirs, profile, `http://${lab.serviceAddress4}/`, REACHABLE_TIMEOUT_MS);
      expect(result.error).toBeUndefined();
      expect(result.status).toBe(200);
      expect(seenAddress(result)).toBe(client.address4);
    });

    it("reaches the service over IPv6", async () => {
      const result = await probeInside(dirs, profile, `http://[${lab.serviceAddress6}]/`, REACHABLE_TIMEOUT_MS);
      expect(result.error).toBeUndefined();
      expect(result.status).toBe(200);
      expect(seenAddress(result)).toBe(client.address6);
    });

    it("resolves names through profile DNS", async () => {
      const result = await runIn(dirs, profile, ["getent", "ahosts", lab.serviceName]);
      expect(result.exitCode, result.all).toBe(0);
      const addresses = new Set(result.stdout.split("\n").map((line) => line.split(/\s+/)[0]));
      expect([...addresses].sort()).toEqual([lab.serviceAddress4, lab.serviceAddress6].sort());
    });

    it("resolv.conf lists only profile server", async () => {
      const result = await runIn(dirs, profile, ["cat", "/etc/resolv.conf"]);
      expect(result.exitCode, result.all).toBe(0);
      const nameservers = result.stdout.split("\n").filter((line) => /^\s*nameserver\s/.test(line));
      expect(nameservers.map((line) => line.trim().split(/\s+/)[1])).toEqual([lab.serviceAddress4]);
    });

    it("nsswitch hosts line is files dns", async () => {
      const result = await runIn(dirs, profile, ["cat", "/etc/nsswitch.conf"]);
      expect(result.exitCode, result.all).toBe(0);
      const hostsLines = result.stdout.split("\n").filter((line) => /^\s*hosts\s*:/.test(line));
      expect(hostsLines).toEqual(["hosts: files dns"]);
    });

    it("host side unreachable from inside", async () => {
      const urls = [`http://${lab.hostAddress4}:${lab.hostHttpPort}/`, `http://[${lab.hostAddress6}]:${lab.hostHttpPort}/`];
      for (const url of urls) {
        const response = await fetch(url, { signal: AbortSignal.timeout(REACHABLE_TIMEOUT_MS) });
        const body = (await response.json()) as { service: string };
        expect(body.service, `${url} from the test process`).toBe("vpnns-lab-host");

        const inside = await probeInside(dirs, profile, url, UNREACHABLE_TIMEOUT_MS);
        expect(inside.ok, `${url} from inside answered: ${inside.body}`).toBe(false);
        expect(inside.error, `${url} from inside`).toMatch(/aborted due to timeout|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH/);
      }
    });
  });

  describe("profile without IPv6", () => {
    const profile = "v4only";
    const link = interfaceName(profile);
    const namespace = namespaceName(profile);
    let client: LabClient;

    beforeAll(async () => {
      client = await importClient(dirs, lab, profile, { ipv6: false });
      await vpnnsUp(dirs, profile);
    });

    afterAll(async () => {
      await vpnnsDown(dirs, profile);
    });

    it("reaches the service over IPv4", async () => {
      const result = await probeInside(dirs, profile, `http://${lab.serviceAddress4}/`, REACHABLE_TIMEOUT_MS);
      expect(result.error).toBeUndefined();
      expect(seenAddress(result)).toBe(client.address4);
    });

    it("IPv6 has no route", async () => {
      const result = await probeInside(dirs, profile, `http://[${lab.serviceAddress6}]:80/`, UNREACHABLE_TIMEOUT_MS);
      expect(result.ok).toBe(false);
      expect(result.error).toMatch(/ENETUNREACH/);
    });

    it("kill-switch drops routed IPv6", async () => {
      const table = await command(["ip", "netns", "exec", namespace, "nft", "list", "table", "inet", "vpnns"]);
      const output = /chain output \{[^}]*\}/s.exec(table.stdout)?.[0] ?? "";
      expect(output).toContain("meta nfproto ipv6 drop");

      // The test adds an IPv6 address and route, as a root process inside could. The kill-switch
      // still drops the packet, so the UDP send fails with EPERM.
      for (const args of [["-6", "addr", "add", `${client.address6}/128`, "dev", link, "nodad"], ["-6", "route", "add", "default", "dev", link]]) {
        const added = await command(["ip", "-n", namespace, ...args]);
        expect(added.exitCode, added.stderr).toBe(0);
      }
      const udpSend = `require("node:dgram").createSocket("udp6").send("x", 80, "${lab.serviceAddress6}", (error) => { console.log(String(error?.code)); process.exit(0); })`;
      const udp = await runIn(dirs, profile, [process.execPath, "-e", udpSend]);
      expect(udp.stdout).toBe("EPERM");
      const tcp = await probeInside(dirs, profile, `http://[${lab.serviceAddress6}]:80/`, UNREACHABLE_TIMEOUT_MS);
      expect(tcp.ok).toBe(false);
    });
  });

  describe("tunnel loss while an app runs", () => {
    let monitor: UplinkMonitor | undefined;
    let app: RunningApp | undefined;

    /** Targets of PROBER_APP: the service and the host side in both families, and a name through DNS. */
    function proberTargets(): Record<string, string> {
      return {
        service4: `http://${lab.serviceAddress4}/`,
        service6: `http://[${lab.serviceAddress6}]/`,
        host4: `http://${lab.hostAddress4}:${lab.hostHttpPort}/`,
        host6: `http://[${lab.hostAddress6}]:${lab.hostHttpPort}/`,
        dns: `dns:${lab.serviceName}`,
      };
    }

    /** Brings the profile up with `vpnns up`, starts PROBER_APP in it and counts the uplink's packets. */
    async function startProber(profile: string): Promise<{ client: LabClient; app: RunningApp; monitor: UplinkMonitor }> {
      const client = await importClient(dirs, lab, profile);
      await vpnnsUp(dirs, profile);
      monitor = new UplinkMonitor(lab, [client]);
      await monitor.install();
      app = startRun(dirs, profile, [process.execPath, "-e", PROBER_APP, JSON.stringify(proberTargets()), String(UNREACHABLE_TIMEOUT_MS)]);
      expect(await app.nextLine()).toBe("ready");
      return { client, app, monitor };
    }

    async function probeOnce(running: RunningApp): Promise<Record<string, string>> {
      running.subprocess.stdin.write("probe\n");
      return JSON.parse(await running.nextLine()) as Record<string, string>;
    }

    afterEach(async () => {
      app?.subprocess.stdin.end();
      await app?.subprocess;
      app = undefined;
      await monitor?.remove();
      monitor = undefined;
      await vpnns(dirs, ["down", "--all"]);
    });

    it("monitor counts plain packets", async () => {
      // A control for the tests below: TCP from the host side to the provider's uplink address,
      // where nothing listens on port 80, crosses the uplink in clear, and the provider replies with a reset.
      monitor = new UplinkMonitor(lab, []);
      await monitor.install();
      await monitor.reset();
      const endpointAddress = lab.endpoint4.slice(0, lab.endpoint4.lastIndexOf(":"));
      await expect(fetch(`http://${endpointAddress}/`, { signal: AbortSignal.timeout(UNREACHABLE_TIMEOUT_MS) })).rejects.toThrow();

      const counts = await monitor.read();
      expect(counts.otherOut).toBeGreaterThan(0);
      expect(counts.otherIn).toBeGreaterThan(0);
      expect(counts.otherPackets).toContain(`${lab.hostAddress4} . ${endpointAddress} . tcp`);
      expect(counts.wireguardOut).toBe(0);
    });

    it("uplink carries only WireGuard", async () => {
      const { client, app, monitor } = await startProber("uplink");
      await monitor.reset();

      const results = await probeOnce(app);
      expect(results.service4, app.stderr()).toBe("ok");
      expect(results.service6, app.stderr()).toBe("ok");
      expect(results.dns, app.stderr()).toBe(`ok ${[lab.serviceAddress4, lab.serviceAddress6].sort().join(",")}`);
      expect(results.host4).toMatch(/^failed: /);
      expect(results.host6).toMatch(/^failed: /);

      const counts = await monitor.read();
      expect(counts.wireguardOut).toBeGreaterThan(0);
      expect(counts.wireguardIn).toBeGreaterThan(0);
      expect(counts.otherOut, counts.otherPackets).toBe(0);
      expect(counts.otherIn, counts.otherPackets).toBe(0);
      expect(counts.profileAddress, `packets with ${client.address4} or ${client.address6}`).toBe(0);
    });

    // Each case breaks the tunnel of a profile that `vpnns up` built, under an app that keeps running.
    const breakages: [string, string, (link: string, namespace: string) => Promise<void>][] = [
      [
        "deleted link stops all traffic",
        "linkdel",
        async (link, namespace) => {
          const deleted = await command(["ip", "-n", namespace, "link", "del", link]);
          expect(deleted.exitCode, deleted.stderr).toBe(0);
        },
      ],
      [
        "killed daemon stops all traffic",
        "daemonkill",
        async (link) => {
          const pids = await wireguardGoPids(link);
          expect(pids).toHaveLength(1);
          process.kill(pids[0]!, "SIGKILL");
        },
      ],
    ];

    it.each(breakages)("%s", async (_name, profile, breakTunnel) => {
      const link = interfaceName(profile);
      const namespace = namespaceName(profile);
      const { client, app, monitor } = await startProber(profile);
      const before = await probeOnce(app);
      expect(before.service4, app.stderr()).toBe("ok");
      expect(before.dns, app.stderr()).toMatch(/^ok /);

      await breakTunnel(link, namespace);
      await waitFor(`wireguard-go of ${link} to exit`, async () => (await wireguardGoPids(link)).length === 0);
      await waitFor(`${link} to leave ${namespace}`, async () => (await command(["ip", "-n", namespace, "link", "show", link])).exitCode !== 0);
      await monitor.reset();

      // The namespace has only loopback left, so the kernel finds no route for anything else.
      const after = await probeOnce(app);
      for (const key of ["service4", "service6", "host4", "host6"]) {
        expect(after[key], `${key} after the tunnel broke`).toBe("failed: ENETUNREACH");
      }
      expect(after.dns).toBe("failed: EAI_AGAIN");

      // The provider may still send WireGuard packets to the closed client port, so only the
      // host side's own WireGuard output must be zero.
      const counts = await monitor.read();
      expect(counts.wireguardOut).toBe(0);
      expect(counts.otherOut, counts.otherPackets).toBe(0);
      expect(counts.otherIn, counts.otherPackets).toBe(0);
      expect(counts.profileAddress, `packets with ${client.address4} or ${client.address6}`).toBe(0);

      const status = await statusOf(dirs, profile);
      expect(status.state).toBe("broken");
      expect(status.problems).toContain(`interface ${link} is missing from ${namespace}`);

      app.subprocess.stdin.end();
      const result = await app.subprocess;
      expect(result.exitCode, result.stderr).toBe(0);
    });
  });

  describe("user of the app", () => {
    const profile = "users";
    let user: PasswdEntry;
    let sudoEnv: Record<string, string>;

    beforeAll(async () => {
      await importClient(dirs, lab, profile);
      await ensureTestUser();
      user = await passwdEntry(TEST_USER);
      sudoEnv = { SUDO_UID: String(user.uid), SUDO_GID: String(user.gid), SUDO_USER: TEST_USER };
      await vpnnsUp(dirs, profile);
    });

    afterAll(async () => {
      await vpnnsDown(dirs, profile);
    });

    async function expectedGroups(): Promise<number[]> {
      return [user.gid, await groupId("audio"), await groupId("video")].sort((a, b) => a - b);
    }

    it("runs as the sudo user", async () => {
      const result = await runIn(dirs, profile, ["sh", "-c", IDENTITY_SCRIPT], { env: sudoEnv });
      expect(result.exitCode, result.all).toBe(0);
      const identity = parseKeyValues(result.stdout);
      expect(identity.uid).toBe(String(user.uid));
      expect(identity.gid).toBe(String(user.gid));
      expect(sortedNumbers(identity.groups ?? "")).toEqual(await expectedGroups());
      expect(identity.home).toBe(user.home);
      expect(identity.user).toBe(TEST_USER);
      expect(identity.logname).toBe(TEST_USER);
      expect(identity.sudo).toBe("0");
    });

    it("sudo user reaches the service", async () => {
      const result = await runIn(dirs, profile, [process.execPath, PROBE, `http://${lab.serviceAddress4}/`, String(REACHABLE_TIMEOUT_MS)], { env: sudoEnv });
      const probe = JSON.parse(result.stdout.trim().split("\n").pop() ?? "{}") as { ok?: boolean; uid?: number };
      expect(probe.ok, result.all).toBe(true);
      expect(probe.uid).toBe(user.uid);
    });

    it("--user runs as that user", async () => {
      const result = await runIn(dirs, profile, ["sh", "-c", IDENTITY_SCRIPT], { flags: ["--user", TEST_USER] });
      expect(result.exitCode, result.all).toBe(0);
      const identity = parseKeyValues(result.stdout);
      expect(identity.uid).toBe(String(user.uid));
      expect(identity.gid).toBe(String(user.gid));
      expect(sortedNumbers(identity.groups ?? "")).toEqual(await expectedGroups());
      expect(identity.home).toBe(user.home);
      expect(identity.user).toBe(TEST_USER);
    });

    it("--as-root overrides the sudo user", async () => {
      const result = await runIn(dirs, profile, ["sh", "-c", IDENTITY_SCRIPT], { flags: ["--as-root"], env: sudoEnv });
      expect(result.exitCode, result.all).toBe(0);
      const identity = parseKeyValues(result.stdout);
      expect(identity.uid).toBe("0");
      expect(identity.gid).toBe("0");
      expect(identity.home).toBe((await passwdEntry("root")).home);
      expect(identity.user).toBe("root");
    });

    it("--user unknown fails and builds nothing", async () => {
      const fresh = "nouser";
      await importClient(dirs, lab, fresh);
      const result = await runIn(dirs, fresh, ["id", "-u"], { flags: ["--user", "nosuchuser-vpnns"] });
      expect(result.exitCode).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toContain('user "nosuchuser-vpnns" not found in the passwd database');
      expect(await leftovers(dirs, fresh, interfaceName(fresh))).toEqual([]);
      expect((await statusOf(dirs, fresh)).state).toBe("down");
    });
  });

  describe("exit codes, signals and stdio", () => {
    const profile = "codes";

    beforeAll(async () => {
      await importClient(dirs, lab, profile);
      await vpnnsUp(dirs, profile);
    });

    afterAll(async () => {
      await vpnnsDown(dirs, profile);
    });

    const exitCases: [string, string[], number][] = [
      ["exit 7", ["sh", "-c", "exit 7"], 7],
      ["false", ["false"], 1],
      ["kill -9 of itself", ["sh", "-c", "kill -9 $$"], 128 + osConstants.signals.SIGKILL],
      ["kill -TERM of itself", ["sh", "-c", "kill -TERM $$"], 128 + osConstants.signals.SIGTERM],
    ];

    it.each(exitCases)("exit status of %s", async (_name, argv, expected) => {
      const result = await runIn(dirs, profile, argv);
      expect(result.exitCode, result.all).toBe(expected);
    });

    it("missing command exits 127", async () => {
      const result = await runIn(dirs, profile, ["nosuchcommand-vpnns", "--flag"]);
      expect(result.exitCode).toBe(127);
      expect(result.stderr).toContain("command not found: nosuchcommand-vpnns");
    });

    it.each(["SIGTERM", "SIGINT", "SIGHUP"] as const)("%s reaches the app", async (signal) => {
      const app = startRun(dirs, profile, [process.execPath, "-e", SIGNAL_APP]);
      try {
        expect(await app.nextLine()).toBe("ready");
        app.subprocess.kill(signal);
        expect(await app.nextLine(SIGNAL_TIMEOUT_MS)).toBe(`received ${signal}`);
      } catch (error) {
        // A run whose app missed the signal would outlive the test.
        app.subprocess.kill("SIGKILL");
        throw error;
      }
      const result = await app.subprocess;
      expect(result.stdout).toBe(`ready\nreceived ${signal}`);
      expect(result.signal, result.stderr).toBeUndefined();
      expect(result.exitCode, result.stderr).toBe(100 + osConstants.signals[signal]);
    });

    it("stdin reaches the app", async () => {
      const input = "line one\nline two\n";
      const result = await runIn(dirs, profile, ["cat"], { input });
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stdout).toBe("line one\nline two");
    });

    it("stdout and stderr stay separate", async () => {
      const result = await runIn(dirs, profile, ["sh", "-c", "echo to-stdout; echo to-stderr >&2"]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stdout).toBe("to-stdout");
      expect(result.stderr).toBe("to-stderr");
    });
  });

  describe("profile lifetime", () => {
    afterEach(async () => {
      await vpnns(dirs, ["down", "--all"]);
    });

    it("run brings profile up and down", async () => {
      const profile = "autoup";
      const client = await importClient(dirs, lab, profile);
      expect((await statusOf(dirs, profile)).state).toBe("down");

      const probe = await probeInside(dirs, profile, `http://${lab.serviceAddress4}/`, REACHABLE_TIMEOUT_MS);
      expect(probe.error).toBeUndefined();
      expect(seenAddress(probe)).toBe(client.address4);
      expect(await leftovers(dirs, profile, interfaceName(profile))).toEqual([]);
      expect((await statusOf(dirs, profile)).state).toBe("down");
    });

    it("exit code survives teardown", async () => {
      const profile = "autocode";
      await importClient(dirs, lab, profile);
      const result = await runIn(dirs, profile, ["sh", "-c", "exit 9"]);
      expect(result.exitCode, result.all).toBe(9);
      expect(await leftovers(dirs, profile, interfaceName(profile))).toEqual([]);
    });

    it("SIGTERM run takes profile down", async () => {
      const profile = "autosignal";
      await importClient(dirs, lab, profile);
      const app = startRun(dirs, profile, [process.execPath, "-e", SIGNAL_APP]);
      try {
        expect(await app.nextLine()).toBe("ready");
        app.subprocess.kill("SIGTERM");
        expect(await app.nextLine(SIGNAL_TIMEOUT_MS)).toBe("received SIGTERM");
      } catch (error) {
        // A run whose app missed the signal would outlive the test.
        app.subprocess.kill("SIGKILL");
        throw error;
      }
      const result = await app.subprocess;
      expect(result.exitCode, result.stderr).toBe(100 + osConstants.signals.SIGTERM);
      expect(await leftovers(dirs, profile, interfaceName(profile))).toEqual([]);
    });

    it("--keep leaves profile up", async () => {
      const profile = "keep";
      await importClient(dirs, lab, profile);
      const kept = await runIn(dirs, profile, ["true"], { flags: ["--keep"] });
      expect(kept.exitCode, kept.all).toBe(0);
      const status = await statusOf(dirs, profile);
      expect(status.state).toBe("up");
      expect(status.processes).toEqual([]);

      // A later run without --keep leaves a kept profile up as well.
      const again = await runIn(dirs, profile, ["true"]);
      expect(again.exitCode, again.all).toBe(0);
      expect((await statusOf(dirs, profile)).state).toBe("up");

      await vpnnsDown(dirs, profile);
      expect(await leftovers(dirs, profile, interfaceName(profile))).toEqual([]);
    });

    it("run leaves an up profile up", async () => {
      const profile = "wasup";
      await importClient(dirs, lab, profile);
      await vpnnsUp(dirs, profile);
      const result = await runIn(dirs, profile, ["true"]);
      expect(result.exitCode, result.all).toBe(0);
      expect((await statusOf(dirs, profile)).state).toBe("up");
      expect(await namespaceEntries(namespaceName(profile))).toHaveLength(1);
    });

    it("background process keeps profile up", async () => {
      const profile = "background";
      await importClient(dirs, lab, profile);
      // The redirections let `vpnns run` end while sleep still runs, because sleep keeps none of its pipes open.
      const result = await runIn(dirs, profile, ["sh", "-c", "sleep 60 </dev/null >/dev/null 2>&1 &"]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stderr).toContain(`leaving profile ${profile} up: 1 process still inside; 'vpnns down ${profile}' ends them`);

      const status = await statusOf(dirs, profile);
      expect(status.state).toBe("up");
      expect(status.processes.map((entry) => entry.command)).toEqual(["sleep"]);

      const down = await vpnns(dirs, ["down", profile]);
      expect(down.exitCode, down.all).toBe(0);
      expect(down.stderr).toContain(`profile ${profile} is down (ended 1 process inside)`);
      expect(await leftovers(dirs, profile, interfaceName(profile))).toEqual([]);
    });
  });

  describe("concurrent runs", () => {
    afterEach(async () => {
      await vpnns(dirs, ["down", "--all"]);
    });

    it("two runs share one namespace", async () => {
      const profile = "shared";
      const namespace = namespaceName(profile);
      await importClient(dirs, lab, profile);
      const barrier = await mkdtemp("/run/vpnns/barrier-");
      // Each app marks that it runs, then waits for the test to create the file "release".
      const app = 'touch "$1/$2"; while [ ! -e "$1/release" ]; do sleep 0.05; done';
      const first = runIn(dirs, profile, ["sh", "-c", app, "sh", barrier, "first"]);
      const second = runIn(dirs, profile, ["sh", "-c", app, "sh", barrier, "second"]);

      try {
        await waitFor("both apps to start", async () => (await pathExists(join(barrier, "first"))) && (await pathExists(join(barrier, "second"))), 30_000);
        expect(await namespaceEntries(namespace)).toHaveLength(1);
        const tables = await command(["ip", "netns", "exec", namespace, "nft", "list", "tables"]);
        expect(tables.stdout.trim().split("\n")).toEqual(["table inet vpnns"]);
        expect((await statusOf(dirs, profile)).state).toBe("up");
      } finally {
        await writeFile(join(barrier, "release"), "");
      }

      const [firstResult, secondResult] = await Promise.all([first, second]);
      expect(firstResult.exitCode, firstResult.all).toBe(0);
      expect(secondResult.exitCode, secondResult.all).toBe(0);
      expect(await namespaceEntries(namespace)).toEqual([]);
      expect((await statusOf(dirs, profile)).state).toBe("down");
      expect(await leftovers(dirs, profile, interfaceName(profile))).toEqual([]);
    });
  });
});
