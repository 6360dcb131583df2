/**
 * Nothing leaves a profile except through the tunnel. Each scenario captures every frame on the
 * lab's uplink with tcpdump, from before the profile is built until after it is removed. Meanwhile
 * an app inside sends TCP, UDP, ICMP and DNS traffic to the lab's service, documentation addresses
 * and the host side. Then every captured packet is decoded and checked: leaving the host side,
 * only WireGuard's encrypted UDP to the endpoint (and ARP, neighbour discovery and the capture's
 * own end marker) may appear. A self-check adds a veth route out of a profile by hand and requires
 * the check to catch it, so a capture that records nothing cannot pass.
 *
 * The totals go to .test-results/leaks.json. Runs only inside test/sandbox.sh, and imports the lab
 * from dist/ (npm run build first).
 */
import { execa, type ResultPromise } from "execa";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it, test } from "vitest";
import type { Lab, LabClient } from "../../src/lab/lab.js";
import { interfaceName, namespaceName } from "../../src/core/names.js";
import { CLI, importClient, makeDirs, sandboxed, SKIP_REASON, vpnns, waitFor, wireguardGoPids, type TestDirs } from "./helpers.js";
import { classifyPacket, describePacket, UplinkCapture, type Packet, type PacketKind, type UplinkRules } from "./capture.js";

const TRAFFIC_APP = fileURLToPath(new URL("../fixtures/traffic/traffic.cjs", import.meta.url));
const RESULTS_FILE = fileURLToPath(new URL("../../.test-results/leaks.json", import.meta.url));

/** Milliseconds each connection, datagram, ping or lookup of the traffic app may take. */
const ATTEMPT_TIMEOUT_MS = 5000;
/** Milliseconds to wait for a line from the traffic app, which runs the attempts of a round in parallel. */
const LINE_TIMEOUT_MS = 60_000;
/** Milliseconds for one scenario, generous because the machine is small and shared. */
const SCENARIO_TIMEOUT_MS = 240_000;

/** Documentation addresses that nothing in the lab owns: traffic to them must stay in the tunnel. */
const DOCUMENTATION_ADDRESSES = ["198.51.100.7", "203.0.113.9", "2001:db8::7", "2001:db8:ffff::9"];
/** Documentation addresses used as DNS servers that do not exist. */
const DOCUMENTATION_DNS_SERVERS = ["198.51.100.53", "2001:db8::53"];
/** An endpoint that the host side has no route to. */
const UNROUTED_ENDPOINT = { address: "203.0.113.77", port: 51820 };

/** The veth pair of the self-check: the host end, the end moved into the profile, and their /30. */
const LEAK_HOST_LINK = "leakhost";
const LEAK_INSIDE_LINK = "leakinside";
const LEAK_HOST_ADDRESS = "198.51.100.253";
const LEAK_INSIDE_ADDRESS = "198.51.100.254";

interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function command(argv: string[], input = ""): Promise<CommandResult> {
  const [file = "", ...args] = argv;
  const result = await execa(file, args, { reject: false, input });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

async function mustRun(argv: string[], input = ""): Promise<string> {
  const result = await command(argv, input);
  if (result.exitCode !== 0) throw new Error(`${argv.join(" ")} failed with ${result.exitCode}: ${result.stderr}`);
  return result.stdout;
}

async function linkInside(namespace: string, link: string): Promise<boolean> {
  return (await command(["ip", "-n", namespace, "link", "show", link])).exitCode === 0;
}

// ---------------------------------------------------------------------------------------------
// The traffic app

interface Targets {
  addresses: string[];
  dnsServers: string[];
  names: string[];
}

/** The traffic app, started with `vpnns run`, which sends one round of traffic per request. */
class TrafficApp {
  private stderr = "";
  private readonly lines: AsyncIterator<string>;

  constructor(private readonly subprocess: ResultPromise<{ reject: false; stdin: "pipe"; forceKillAfterDelay: false }>) {
    subprocess.stderr.on("data", (chunk: Buffer) => {
      this.stderr += chunk.toString("utf8");
    });
    this.lines = createInterface({ input: subprocess.stdout })[Symbol.asyncIterator]();
  }

  static async start(dirs: TestDirs, profile: string, targets: Targets, flags: string[] = []): Promise<TrafficApp> {
    const argument = JSON.stringify({ ...targets, timeoutMs: ATTEMPT_TIMEOUT_MS });
    const subprocess = execa(process.execPath, [CLI, "run", "--profile", profile, ...flags, "--", process.execPath, TRAFFIC_APP, argument], {
      reject: false,
      stdin: "pipe",
      timeout: SCENARIO_TIMEOUT_MS,
      forceKillAfterDelay: false,
      env: { VPNNS_CONFIG_DIR: dirs.configDir, VPNNS_STATE_DIR: dirs.stateDir },
    });
    const app = new TrafficApp(subprocess);
    const first = await app.nextLine();
    if (first !== "ready") throw new Error(`the traffic app printed ${JSON.stringify(first)} instead of "ready": ${app.stderr}`);
    return app;
  }

  /** Sends one round of traffic and returns the outcome of each attempt, such as "tcp 192.0.2.1 80": "ok". */
  async round(): Promise<Record<string, string>> {
    this.subprocess.stdin.write("round\n");
    return JSON.parse(await this.nextLine()) as Record<string, string>;
  }

  /** Closes stdin, so the app exits, and waits for `vpnns run` to exit. */
  async end(): Promise<number> {
    this.subprocess.stdin.end();
    const result = await this.subprocess;
    return result.exitCode ?? -1;
  }

  kill(): void {
    this.subprocess.kill("SIGKILL");
  }

  output(): string {
    return this.stderr;
  }

  private async nextLine(): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no line from the traffic app within ${LINE_TIMEOUT_MS} ms; stderr: ${this.stderr}`)), LINE_TIMEOUT_MS);
    });
    try {
      const next = await Promise.race([this.lines.next(), timeout]);
      if (next.done) throw new Error(`the traffic app's stdout ended; stderr: ${this.stderr}`);
      return next.value;
    } finally {
      clearTimeout(timer);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios and totals

interface ScenarioResult {
  name: string;
  packets: number;
  leaks: string[];
  unexpectedIn: string[];
  kinds: Partial<Record<PacketKind, number>>;
  /** WireGuard handshake responses (message type 2) that arrived from the endpoint. */
  handshakeResponses: number;
  /** Count of WireGuard packets that left, by destination address. */
  wireguardOutTo: Record<string, number>;
}

function tally(packets: Packet[], rules: UplinkRules, name: string): ScenarioResult {
  const result: ScenarioResult = { name, packets: packets.length, leaks: [], unexpectedIn: [], kinds: {}, handshakeResponses: 0, wireguardOutTo: {} };
  for (const packet of packets) {
    const kind = classifyPacket(packet, rules);
    if (kind === "wireguard-in" && packet.payload?.[0] === 2) result.handshakeResponses += 1;
    if (kind === "wireguard-out") result.wireguardOutTo[packet.destination!] = (result.wireguardOutTo[packet.destination!] ?? 0) + 1;
    result.kinds[kind] = (result.kinds[kind] ?? 0) + 1;
    if (kind === "leak") result.leaks.push(describePacket(packet));
    if (kind === "unexpected-in") result.unexpectedIn.push(describePacket(packet));
  }
  return result;
}

if (!sandboxed) test.skip(`leak tests skipped: ${SKIP_REASON}`, () => {});

describe.skipIf(!sandboxed)("leaks", { timeout: SCENARIO_TIMEOUT_MS }, () => {
  let lab: Lab;
  let dirs: TestDirs;
  let captureFolder: string;
  let hostMac: string;
  let endpointAddress: string;
  let endpointPort: number;
  const results: ScenarioResult[] = [];
  let selfCheck: ScenarioResult | undefined;
  let openCapture: UplinkCapture | undefined;
  let openApp: TrafficApp | undefined;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    const labModule = (await import("../../dist/lab/lab.js")) as typeof import("../../src/lab/lab.js");
    lab = await labModule.createLab();
    dirs = await makeDirs("leaks");
    captureFolder = await mkdtemp("/run/vpnns/capture-");
    // /sys still shows the machine's namespace inside the sandbox, so ip reports the MAC address.
    const [uplink] = JSON.parse(await mustRun(["ip", "-j", "link", "show", "dev", lab.uplinkInterface])) as { address: string }[];
    hostMac = uplink!.address;
    endpointAddress = lab.endpoint4.slice(0, lab.endpoint4.lastIndexOf(":"));
    endpointPort = Number(lab.endpoint4.slice(lab.endpoint4.lastIndexOf(":") + 1));
  });

  afterEach(async () => {
    openApp?.kill();
    openApp = undefined;
    await openCapture?.abort();
    openCapture = undefined;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await vpnns(dirs, ["down", "--all"]);
  });

  afterAll(async () => {
    if (dirs) await vpnns(dirs, ["down", "--all"]);
    await lab?.destroy();
    if (results.length === 0) return;
    const summary = {
      scenarios: results.length,
      packetsChecked: results.reduce((sum, result) => sum + result.packets, 0),
      packetsLeaked: results.reduce((sum, result) => sum + result.leaks.length, 0),
      selfCheck: selfCheck && { packetsChecked: selfCheck.packets, leaksCaught: selfCheck.leaks.length },
      perScenario: results.map(({ name, packets, leaks, kinds }) => ({ name, packets, leaks: leaks.length, kinds })),
      finishedAt: new Date().toISOString(),
    };
    await mkdir(join(RESULTS_FILE, ".."), { recursive: true });
    await writeFile(RESULTS_FILE, JSON.stringify(summary, null, 2) + "\n");
    const selfCheckText = selfCheck ? `; self-check caught ${selfCheck.leaks.length} leaked packets` : "";
    console.log(
      `leaks: ${summary.scenarios} scenarios, ${summary.packetsChecked} packets checked, ${summary.packetsLeaked} leaked${selfCheckText}`,
    );
  });

  /** Return every target: the service, documentation addresses, the host side and the endpoint's own address. */
  function allTargets(): Targets {
    return {
      addresses: [lab.serviceAddress4, lab.serviceAddress6, ...DOCUMENTATION_ADDRESSES, lab.hostAddress4, lab.hostAddress6, endpointAddress],
      dnsServers: [lab.serviceAddress4],
      names: [lab.serviceName],
    };
  }

  /** Imports a new lab client as a profile after changing its wg-quick text. */
  async function importChanged(profile: string, change: (text: string) => string): Promise<LabClient> {
    const client = await lab.addClient();
    const text = change(client.profileText);
    expect(text).not.toBe(client.profileText);
    const file = join(captureFolder, `${profile}.conf`);
    await writeFile(file, text, { mode: 0o600 });
    const imported = await vpnns(dirs, ["profile", "import", file, "--name", profile]);
    expect(imported.exitCode, imported.all).toBe(0);
    return client;
  }

  /** Return the provider's IPv6 endpoint, the same server and port as the IPv4 one. */
  function providerEndpoint6(): { address: string; port: number } {
    return { address: lab.endpoint6.slice(1, lab.endpoint6.lastIndexOf("]")), port: endpointPort };
  }

  function rulesFor(clients: LabClient[], extraEndpoints: { address: string; port: number }[] = []): UplinkRules {
    return {
      hostMac,
      hostAddresses: [lab.hostAddress4, lab.hostAddress6],
      // Both addresses are the one provider's. It keeps sending to peers of earlier scenarios, so the
      // host's ICMP errors about those packets can show up in any later capture.
      endpoints: [{ address: endpointAddress, port: endpointPort }, providerEndpoint6(), ...extraEndpoints],
      markerAddress: endpointAddress,
      insideAddresses: clients.flatMap((client) => [client.address4, client.address6]),
    };
  }

  /**
   * Captures the uplink while the action runs, takes the profile down, and checks every packet.
   * The capture ends after the namespace is gone, so no packet from inside can come later.
   */
  async function captured(name: string, profile: string, rules: UplinkRules, action: () => Promise<void>): Promise<ScenarioResult> {
    const file = join(captureFolder, `${profile}.pcap`);
    openCapture = await UplinkCapture.start({ interfaceName: lab.uplinkInterface, file, markerAddress: endpointAddress });
    await action();
    const down = await vpnns(dirs, ["down", profile]);
    expect(down.exitCode, down.all).toBe(0);
    const capture = await openCapture.stop();
    openCapture = undefined;
    expect(capture.droppedByKernel, "packets that tcpdump lost").toBe(0);
    expect(capture.packets.filter((packet) => classifyPacket(packet, rules) === "marker")).toHaveLength(1);
    return tally(capture.packets, rules, name);
  }

  async function startApp(profile: string, targets: Targets, flags: string[] = []): Promise<TrafficApp> {
    openApp = await TrafficApp.start(dirs, profile, targets, flags);
    return openApp;
  }

  async function endApp(app: TrafficApp): Promise<void> {
    const exitCode = await app.end();
    openApp = undefined;
    expect(exitCode, app.output()).toBe(0);
  }

  function expectNoLeaks(result: ScenarioResult): void {
    expect(result.leaks, "packets from inside that left without the tunnel").toEqual([]);
    expect(result.unexpectedIn, "packets that arrived from the provider other than WireGuard").toEqual([]);
  }

  it("normal traffic leaves only as WireGuard", async () => {
    const profile = "normal";
    const client = await importClient(dirs, lab, profile);
    const result = await captured("normal traffic", profile, rulesFor([client]), async () => {
      const app = await startApp(profile, allTargets());
      const outcomes = await app.round();
      expect(outcomes[`tcp ${lab.serviceAddress4} 80`], app.output()).toBe("ok");
      expect(outcomes[`tcp ${lab.serviceAddress6} 80`], app.output()).toBe("ok");
      expect(outcomes[`udp ${lab.serviceAddress4} 53`], app.output()).toBe("ok");
      expect(outcomes[`icmp ${lab.serviceAddress4}`], app.output()).toBe("ok");
      expect(outcomes[`icmp ${lab.serviceAddress6}`], app.output()).toBe("ok");
      await endApp(app);
    });
    results.push(result);
    expectNoLeaks(result);
    expect(result.kinds["wireguard-out"]).toBeGreaterThan(0);
    expect(result.kinds["wireguard-in"]).toBeGreaterThan(0);
    expect(result.handshakeResponses, "the capture runs from before the first handshake").toBeGreaterThan(0);
  });

  it("iptables kill-switch: only WireGuard leaves", async () => {
    const profile = "iptables";
    const client = await importClient(dirs, lab, profile);
    const chosen = await vpnns(dirs, ["settings", "set", "firewall-backend", "iptables"]);
    expect(chosen.exitCode, chosen.all).toBe(0);
    cleanups.push(() => vpnns(dirs, ["settings", "set", "firewall-backend", "auto"]));
    const result = await captured("normal traffic, iptables kill-switch", profile, rulesFor([client]), async () => {
      const app = await startApp(profile, allTargets());
      const saved = await mustRun(["ip", "netns", "exec", namespaceName(profile), "iptables-save"]);
      expect(saved).toContain(":OUTPUT DROP");
      const outcomes = await app.round();
      expect(outcomes[`tcp ${lab.serviceAddress4} 80`], app.output()).toBe("ok");
      expect(outcomes[`tcp ${lab.serviceAddress6} 80`], app.output()).toBe("ok");
      await endApp(app);
    });
    results.push(result);
    expectNoLeaks(result);
    expect(result.kinds["wireguard-out"]).toBeGreaterThan(0);
  });

  it("IPv6 endpoint: only WireGuard leaves", async () => {
    const profile = "endpoint6";
    const client = await importClient(dirs, lab, profile, { endpoint: "ipv6" });
    const endpoint6 = providerEndpoint6();
    const rules = rulesFor([client]);
    const result = await captured("normal traffic, IPv6 endpoint", profile, rules, async () => {
      const app = await startApp(profile, allTargets());
      const outcomes = await app.round();
      expect(outcomes[`tcp ${lab.serviceAddress4} 80`], app.output()).toBe("ok");
      expect(outcomes[`tcp ${lab.serviceAddress6} 80`], app.output()).toBe("ok");
      await endApp(app);
    });
    results.push(result);
    expectNoLeaks(result);
    expect(result.wireguardOutTo[endpoint6.address], "WireGuard packets to the IPv6 endpoint").toBeGreaterThan(0);
    expect(result.wireguardOutTo[endpointAddress], "WireGuard packets to the IPv4 endpoint").toBeUndefined();
  });

  it("DNS lookups leave only as WireGuard", async () => {
    const profile = "lookups";
    const client = await importClient(dirs, lab, profile);
    const targets: Targets = {
      addresses: [],
      dnsServers: [lab.serviceAddress4, lab.serviceAddress6, ...DOCUMENTATION_DNS_SERVERS, lab.hostAddress4, endpointAddress],
      names: [lab.serviceName, "host.vpnns.test", "missing.vpnns.test", "leak-test.invalid"],
    };
    const result = await captured("DNS lookups", profile, rulesFor([client]), async () => {
      const app = await startApp(profile, targets);
      const outcomes = await app.round();
      expect(outcomes[`lookup ${lab.serviceName}`], app.output()).toBe("ok");
      expect(outcomes[`dns ${lab.serviceAddress4} A ${lab.serviceName}`], app.output()).toBe("ok");
      expect(outcomes[`dns ${lab.serviceAddress6} AAAA ${lab.serviceName}`], app.output()).toBe("ok");
      await endApp(app);
    });
    results.push(result);
    expectNoLeaks(result);
    expect(result.kinds["wireguard-out"]).toBeGreaterThan(0);
  });

  it("IPv6 without IPv6 in profile stays inside", async () => {
    const profile = "noipv6";
    const client = await importClient(dirs, lab, profile, { ipv6: false });
    const result = await captured("IPv6 traffic, profile without IPv6", profile, rulesFor([client]), async () => {
      const app = await startApp(profile, allTargets());
      const outcomes = await app.round();
      expect(outcomes[`tcp ${lab.serviceAddress4} 80`], app.output()).toBe("ok");
      expect(outcomes[`tcp ${lab.serviceAddress6} 80`]).toBe("failed: ENETUNREACH");
      expect(outcomes["tcp 2001:db8::7 80"]).toBe("failed: ENETUNREACH");

      // A root process inside could add an IPv6 address and default route, but the kill-switch still drops IPv6.
      const namespace = namespaceName(profile);
      const link = interfaceName(profile);
      await mustRun(["ip", "-n", namespace, "-6", "addr", "add", `${client.address6}/128`, "dev", link, "nodad"]);
      await mustRun(["ip", "-n", namespace, "-6", "route", "add", "default", "dev", link]);
      const routed = await app.round();
      expect(routed[`tcp ${lab.serviceAddress6} 80`]).toMatch(/^failed: /);
      expect(routed[`udp ${lab.serviceAddress6} 53`]).toBe("failed: EPERM");
      await endApp(app);
    });
    results.push(result);
    expectNoLeaks(result);
  });

  // Each case breaks the tunnel of a running profile, then the app inside sends traffic again.
  const breakages: [string, string, (namespace: string, link: string) => Promise<void>][] = [
    [
      "wireguard-go killed",
      "daemonkill",
      async (namespace, link) => {
        const pids = await wireguardGoPids(link);
        expect(pids).toHaveLength(1);
        process.kill(pids[0]!, "SIGKILL");
        await waitFor(`wireguard-go of ${link} to exit`, async () => (await wireguardGoPids(link)).length === 0, 30_000);
        await waitFor(`${link} to leave ${namespace}`, async () => !(await linkInside(namespace, link)), 30_000);
      },
    ],
    [
      "link deleted",
      "linkdel",
      async (namespace, link) => {
        await mustRun(["ip", "-n", namespace, "link", "del", link]);
        await waitFor(`wireguard-go of ${link} to exit`, async () => (await wireguardGoPids(link)).length === 0, 30_000);
      },
    ],
  ];

  it.each(breakages)("%s: nothing leaves", async (name, profile, breakTunnel) => {
    const client = await importClient(dirs, lab, profile);
    const namespace = namespaceName(profile);
    const link = interfaceName(profile);
    const result = await captured(name, profile, rulesFor([client]), async () => {
      const app = await startApp(profile, allTargets());
      const before = await app.round();
      expect(before[`tcp ${lab.serviceAddress4} 80`], app.output()).toBe("ok");

      await breakTunnel(namespace, link);
      const after = await app.round();
      for (const address of allTargets().addresses) {
        expect(after[`tcp ${address} 80`], `tcp ${address} 80 after the tunnel broke`).toBe("failed: ENETUNREACH");
        expect(after[`udp ${address} 53`], `udp ${address} 53 after the tunnel broke`).toBe("failed: ENETUNREACH");
      }
      await endApp(app);
    });
    results.push(result);
    expectNoLeaks(result);
  });

  it("endpoint dropped by provider: nothing leaves", async () => {
    const profile = "dropped";
    const client = await importClient(dirs, lab, profile);
    const table = "leaktestdrop";
    const provider = ["ip", "netns", "exec", lab.providerNamespace, "nft"];
    await mustRun([...provider, "-f", "-"], [
      `table inet ${table} {`,
      "  chain input {",
      "    type filter hook input priority -10; policy accept;",
      `    udp dport ${endpointPort} drop`,
      "  }",
      "  chain output {",
      "    type filter hook output priority -10; policy accept;",
      `    udp sport ${endpointPort} drop`,
      "  }",
      "}",
      "",
    ].join("\n"));
    cleanups.push(() => mustRun([...provider, "delete", "table", "inet", table]));

    const result = await captured("endpoint unreachable (dropped)", profile, rulesFor([client]), async () => {
      const app = await startApp(profile, allTargets(), ["--no-wait"]);
      const outcomes = await app.round();
      expect(outcomes[`tcp ${lab.serviceAddress4} 80`]).toMatch(/^failed: /);
      await endApp(app);
    });
    results.push(result);
    expectNoLeaks(result);
    expect(result.kinds["wireguard-out"], "handshake initiations to the endpoint").toBeGreaterThan(0);
    expect(result.kinds["wireguard-in"] ?? 0, "WireGuard packets past the provider's drop").toBe(0);
  });

  it("endpoint without route: nothing leaves", async () => {
    const profile = "unrouted";
    const endpoint = `Endpoint = ${UNROUTED_ENDPOINT.address}:${UNROUTED_ENDPOINT.port}`;
    const client = await importChanged(profile, (text) => text.replace(/^Endpoint = .*$/m, endpoint));
    const result = await captured("endpoint unreachable (no route)", profile, rulesFor([client], [UNROUTED_ENDPOINT]), async () => {
      const app = await startApp(profile, allTargets(), ["--no-wait"]);
      const outcomes = await app.round();
      expect(outcomes[`tcp ${lab.serviceAddress4} 80`]).toMatch(/^failed: /);
      await endApp(app);
    });
    results.push(result);
    expectNoLeaks(result);
  });

  it("wrong peer key: nothing leaves", async () => {
    const profile = "wrongkey";
    const privateKey = (await mustRun(["wg", "genkey"])).trim();
    const strangerKey = (await mustRun(["wg", "pubkey"], `${privateKey}\n`)).trim();
    const client = await importChanged(profile, (text) => text.replace(/^PublicKey = .*$/m, `PublicKey = ${strangerKey}`));
    const result = await captured("wrong peer key", profile, rulesFor([client]), async () => {
      const app = await startApp(profile, allTargets(), ["--no-wait"]);
      const outcomes = await app.round();
      expect(outcomes[`tcp ${lab.serviceAddress4} 80`]).toMatch(/^failed: /);
      await endApp(app);
    });
    results.push(result);
    expectNoLeaks(result);
    expect(result.kinds["wireguard-out"], "handshake initiations to the endpoint").toBeGreaterThan(0);
    // The provider may still send data to the peers of earlier scenarios, but it sends no handshake response.
    expect(result.handshakeResponses, "handshake responses under a wrong key").toBe(0);
  });

  it("firewall table deleted: only WireGuard leaves", async () => {
    const profile = "nofirewall";
    const client = await importClient(dirs, lab, profile);
    const namespace = namespaceName(profile);
    const result = await captured("kill-switch table deleted", profile, rulesFor([client]), async () => {
      const app = await startApp(profile, allTargets());
      await mustRun(["ip", "netns", "exec", namespace, "nft", "delete", "table", "inet", "vpnns"]);
      expect((await mustRun(["ip", "netns", "exec", namespace, "nft", "list", "tables"])).trim()).toBe("");

      // The tunnel is still the namespace's only link, so traffic still goes through it.
      const outcomes = await app.round();
      expect(outcomes[`tcp ${lab.serviceAddress4} 80`], app.output()).toBe("ok");
      await endApp(app);
    });
    results.push(result);
    expectNoLeaks(result);
    expect(result.kinds["wireguard-out"]).toBeGreaterThan(0);
  });

  it("self-check: hand-made veth leak is caught", async () => {
    const profile = "selfcheck";
    const client = await importClient(dirs, lab, profile);
    const namespace = namespaceName(profile);
    const forwarding = (await readFile("/proc/sys/net/ipv4/ip_forward", "utf8")).trim();
    const result = await captured("self-check", profile, rulesFor([client]), async () => {
      const app = await startApp(profile, allTargets());
      await mustRun(["ip", "netns", "exec", namespace, "nft", "delete", "table", "inet", "vpnns"]);

      // A second way out, made by hand: a veth pair to the host side, which forwards to the uplink.
      await mustRun(["ip", "link", "add", LEAK_HOST_LINK, "type", "veth", "peer", "name", LEAK_INSIDE_LINK, "netns", namespace]);
      cleanups.push(() => command(["ip", "link", "del", LEAK_HOST_LINK]));
      await mustRun(["ip", "addr", "add", `${LEAK_HOST_ADDRESS}/30`, "dev", LEAK_HOST_LINK]);
      await mustRun(["ip", "link", "set", LEAK_HOST_LINK, "up"]);
      await mustRun(["ip", "-n", namespace, "addr", "add", `${LEAK_INSIDE_ADDRESS}/30`, "dev", LEAK_INSIDE_LINK]);
      await mustRun(["ip", "-n", namespace, "link", "set", LEAK_INSIDE_LINK, "up"]);
      await mustRun(["ip", "-n", namespace, "route", "add", `${endpointAddress}/32`, "via", LEAK_HOST_ADDRESS]);
      await mustRun(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
      cleanups.push(() => mustRun(["sysctl", "-q", "-w", `net.ipv4.ip_forward=${forwarding}`]));

      await app.round();
      await endApp(app);
    });
    selfCheck = result;
    const leakedFromVeth = result.leaks.filter((line) => line.includes(`${LEAK_INSIDE_ADDRESS} > ${endpointAddress}`));
    expect(leakedFromVeth.length, result.leaks.join("\n")).toBeGreaterThan(0);
    expect(result.kinds["wireguard-out"]).toBeGreaterThan(0);
  });
});
