/**
 * `vpnns publish` end to end, against the lab: HTTP and UDP services inside a profile reply on
 * published host ports, under parallel, large, slow and dropped transfers, while the namespace keeps
 * only loopback and the WireGuard interface and nothing new crosses the uplink. Also covers the
 * forwarder's restart, busy host ports, `unpublish`, the list applied at `up`, and `down`, `cleanup`
 * and `run` removing every listener, socket and process. Runs only inside test/sandbox.sh, and
 * imports the lab from dist/ (npm run build first).
 */
import { execa, type ResultPromise } from "execa";
import dgram from "node:dgram";
import http from "node:http";
import net from "node:net";
import { readdir, readFile, readlink, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, test } from "vitest";
import type { Lab, LabClient } from "../../src/lab/lab.js";
import type { ProfileReport } from "../../src/core/status.js";
import { interfaceName, namespaceName } from "../../src/core/names.js";
import { importClient, makeDirs, sandboxed, SKIP_REASON, vpnns, waitFor, type TestDirs } from "./helpers.js";

const PROFILE = "pub";
const NAMESPACE = namespaceName(PROFILE);
const LINK = interfaceName(PROFILE);
const HTTP_SERVER_MODULE = new URL("../../dist/lab/http-server.js", import.meta.url).href;
/** Milliseconds to wait for a service inside to print "ready". */
const READY_TIMEOUT_MS = 20_000;

/** Service ports inside the namespace, one per address a service can bind, and their host ports. */
const SERVICES = {
  wildcard: { inside: 8080, host: 18080 },
  loopback4: { inside: 8081, host: 18081 },
  loopback6: { inside: 8082, host: 18082 },
  tunnel: { inside: 8083, host: 18083 },
} as const;
/** A UDP echo service on 127.0.0.1, and one on ::1 that the forwarder reaches after 127.0.0.1 refuses. */
const UDP_INSIDE = 5300;
const UDP_HOST = 15300;
const UDP6_INSIDE = 5301;
const UDP6_HOST = 15301;

/**
 * A service for `node -e` inside the namespace: argv[1] is "http" or "udp", argv[2] the address and
 * argv[3] the port. HTTP uses the lab's handler (`/` and `/bytes?n=N`); UDP echoes each datagram with
 * "echo:" in front. It prints "ready" once it listens and exits when stdin closes.
 */
const SERVICE_APP = `
const [kind, address, port] = process.argv.slice(1);
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
if (kind === "udp") {
  const socket = require("node:dgram").createSocket(address.includes(":") ? "udp6" : "udp4");
  socket.on("message", (message, client) => socket.send(Buffer.concat([Buffer.from("echo:"), message]), client.port, client.address));
  socket.bind(Number(port), address, () => process.stdout.write("ready\\n"));
} else {
  import(${JSON.stringify(HTTP_SERVER_MODULE)}).then(async (lab) => {
    await lab.startHttpService(lab.createRequestHandler("published"), [address], Number(port));
    process.stdout.write("ready\\n");
  });
}
`;

async function command(argv: string[], input = ""): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const [file = "", ...args] = argv;
  const result = await execa(file, args, { reject: false, input });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Start a service inside the namespace as root and wait for its "ready" line. The process comes
 * wrapped in an object, because an async function that returned it would wait for it to end:
 * execa's subprocess is also a promise of its result.
 */
async function startService(kind: "http" | "udp", address: string, port: number): Promise<{ service: ResultPromise }> {
  const subprocess = execa("ip", ["netns", "exec", NAMESPACE, process.execPath, "-e", SERVICE_APP, kind, address, String(port)], {
    reject: false,
    stdin: "pipe",
  });
  await new Promise<void>((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`service ${kind} ${address}:${port} not ready within ${READY_TIMEOUT_MS} ms: ${output}`)), READY_TIMEOUT_MS);
    subprocess.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("ready\n")) {
        clearTimeout(timer);
        resolve();
      }
    });
    subprocess.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    void subprocess.then((result) => {
      clearTimeout(timer);
      reject(new Error(`service ${kind} ${address}:${port} exited with ${result.exitCode}: ${output}`));
    });
  });
  return { service: subprocess };
}

interface HttpResult {
  status: number;
  body: Buffer;
}

/** GET a path from a host port on 127.0.0.1 with a fresh connection. */
function get(port: number, path = "/", host = "127.0.0.1"): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host, port, path, agent: false, timeout: 30_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
      response.on("error", reject);
    });
    request.on("timeout", () => request.destroy(new Error(`GET ${path} on port ${port} timed out`)));
    request.on("error", reject);
  });
}

function remoteAddressOf(result: HttpResult): string {
  return (JSON.parse(result.body.toString()) as { remoteAddress: string }).remoteAddress;
}

/** Returns the offset of the first byte that breaks the /bytes pattern (byte i is i % 256), or -1. */
function patternMismatch(chunk: Buffer, offset: number): number {
  for (let index = 0; index < chunk.length; index++) {
    if (chunk[index] !== (offset + index) % 256) return offset + index;
  }
  return -1;
}

/**
 * Send a raw GET /bytes?n=N on a new TCP connection and read the body through `onBody`, which may
 * pause the socket. Resolves with the number of body bytes and the first pattern mismatch.
 */
function rawBytes(port: number, n: number, onBody: (socket: net.Socket, received: number) => void = () => {}): Promise<{ received: number; mismatch: number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let header = Buffer.alloc(0);
    let inBody = false;
    let received = 0;
    let mismatch = -1;
    socket.on("connect", () => socket.write(`GET /bytes?n=${n} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n`));
    socket.on("data", (chunk: Buffer) => {
      let body = chunk;
      if (!inBody) {
        header = Buffer.concat([header, chunk]);
        const end = header.indexOf("\r\n\r\n");
        if (end < 0) return;
        inBody = true;
        body = header.subarray(end + 4);
      }
      if (mismatch < 0) mismatch = patternMismatch(body, received);
      received += body.length;
      onBody(socket, received);
    });
    socket.on("error", reject);
    socket.on("close", () => resolve({ received, mismatch }));
  });
}

async function statusOf(dirs: TestDirs): Promise<ProfileReport> {
  const result = await vpnns(dirs, ["status", PROFILE, "--json"]);
  if (result.exitCode !== 0) throw new Error(`vpnns status failed: ${result.all}`);
  return JSON.parse(result.stdout) as ProfileReport;
}

/** Processes of the publish supervisor and forwarder of this test's state folder. */
async function publishProcesses(dirs: TestDirs): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = await readFile(`/proc/${entry}/stat`, "utf8");
      if (status.slice(status.lastIndexOf(")") + 2)[0] === "Z") continue;
      const argv = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0");
      const isOurs = argv.some((arg) => arg.startsWith(dirs.stateDir));
      if (isOurs && argv.some((arg) => arg.endsWith("/publish/supervisor.js") || arg.endsWith("/publish/forwarder.js"))) found.push(`${entry} ${argv.join(" ")}`);
    } catch {
      // The process ended during the scan.
    }
  }
  return found;
}

/** TCP and UDP sockets listening on the host port in the sandbox's namespace, as `ss` lists them. */
async function hostListeners(port: number): Promise<string> {
  const tcp = await command(["ss", "-H", "-ltn", "sport", "=", `:${port}`]);
  const udp = await command(["ss", "-H", "-lun", "sport", "=", `:${port}`]);
  return (tcp.stdout + udp.stdout).trim();
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Return what publishing could change in the namespace: its links, addresses, routes and firewall rules. */
async function namespaceSnapshot(): Promise<string> {
  const parts = [
    await command(["ip", "-n", NAMESPACE, "-o", "link", "show"]),
    await command(["ip", "-n", NAMESPACE, "-o", "address", "show"]),
    await command(["ip", "-n", NAMESPACE, "route", "show", "table", "all"]),
    await command(["ip", "-n", NAMESPACE, "-6", "route", "show", "table", "all"]),
    await command(["ip", "netns", "exec", NAMESPACE, "nft", "-s", "list", "ruleset"]),
  ];
  // Counters and lifetimes change with traffic, not with configuration.
  return parts.map((part) => part.stdout.replace(/ (valid_lft|preferred_lft) \S+/g, "")).join("\n");
}

/**
 * nftables counters in the sandbox's own namespace, which plays the user's host. They count
 * packets on the lab's uplink other than WireGuard to and from the provider's endpoint. They also
 * count packets anywhere with the profile's tunnel address, which must never appear outside the namespace.
 */
class UplinkMonitor {
  static readonly TABLE = "vpnnspublishtest";

  constructor(
    private readonly lab: Lab,
    private readonly client: LabClient,
  ) {}

  async install(): Promise<void> {
    const separator = this.lab.endpoint4.lastIndexOf(":");
    const endpointAddress = this.lab.endpoint4.slice(0, separator);
    const endpointPort = this.lab.endpoint4.slice(separator + 1);
    const uplink = JSON.stringify(this.lab.uplinkInterface);
    const linkLocal = "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report } return";
    const tunnelAddress = [
      `    ip saddr ${this.client.address4} counter name tunnel_address`,
      `    ip daddr ${this.client.address4} counter name tunnel_address`,
      `    ip6 saddr ${this.client.address6} counter name tunnel_address`,
      `    ip6 daddr ${this.client.address6} counter name tunnel_address`,
    ];
    const ruleset = [
      `table inet ${UplinkMonitor.TABLE} {`,
      "  counter other_in {}",
      "  counter other_out {}",
      "  counter tunnel_address {}",
      "  chain arriving {",
      "    type filter hook prerouting priority -300; policy accept;",
      ...tunnelAddress,
      `    iifname != ${uplink} return`,
      `    ip saddr ${endpointAddress} udp sport ${endpointPort} return`,
      `    ${linkLocal}`,
      "    counter name other_in",
      "  }",
      "  chain leaving {",
      "    type filter hook postrouting priority 300; policy accept;",
      ...tunnelAddress,
      `    oifname != ${uplink} return`,
      `    ip daddr ${endpointAddress} udp dport ${endpointPort} return`,
      `    ${linkLocal}`,
      "    counter name other_out",
      "  }",
      "}",
      "",
    ].join("\n");
    const result = await command(["nft", "-f", "-"], ruleset);
    if (result.exitCode !== 0) throw new Error(`failed to add nft table ${UplinkMonitor.TABLE}: ${result.stderr}`);
  }

  async reset(): Promise<void> {
    await command(["nft", "reset", "counters", "table", "inet", UplinkMonitor.TABLE]);
  }

  async read(): Promise<Record<string, number>> {
    const listed = await command(["nft", "-j", "list", "counters", "table", "inet", UplinkMonitor.TABLE]);
    const counts: Record<string, number> = {};
    for (const entry of (JSON.parse(listed.stdout) as { nftables: { counter?: { name: string; packets: number } }[] }).nftables) {
      if (entry.counter) counts[entry.counter.name] = entry.counter.packets;
    }
    return counts;
  }

  async remove(): Promise<void> {
    await command(["nft", "delete", "table", "inet", UplinkMonitor.TABLE]);
  }
}

// ---------------------------------------------------------------------------------------------
// Tests

if (!sandboxed) test.skip(`publish tests skipped: ${SKIP_REASON}`, () => {});

describe.runIf(sandboxed)("vpnns publish", () => {
  let lab: Lab;
  let dirs: TestDirs;
  let client: LabClient;
  let monitor: UplinkMonitor;
  const services: ResultPromise[] = [];

  async function startServices(): Promise<void> {
    services.push((await startService("http", "0.0.0.0", SERVICES.wildcard.inside)).service);
    services.push((await startService("http", "127.0.0.1", SERVICES.loopback4.inside)).service);
    services.push((await startService("http", "::1", SERVICES.loopback6.inside)).service);
    services.push((await startService("http", client.address4, SERVICES.tunnel.inside)).service);
    services.push((await startService("udp", "127.0.0.1", UDP_INSIDE)).service);
    services.push((await startService("udp", "::1", UDP6_INSIDE)).service);
  }

  async function stopServices(): Promise<void> {
    for (const service of services.splice(0)) {
      service.stdin?.end();
      service.kill("SIGTERM");
      await service;
    }
  }

  async function publish(args: string[]) {
    const result = await vpnns(dirs, ["publish", PROFILE, ...args]);
    if (result.exitCode !== 0) throw new Error(`vpnns publish ${args.join(" ")} failed: ${result.all}`);
    return result;
  }

  beforeAll(async () => {
    const labModule = (await import("../../dist/lab/lab.js")) as typeof import("../../src/lab/lab.js");
    lab = await labModule.createLab();
    dirs = await makeDirs("publish");
    client = await importClient(dirs, lab, PROFILE);
    monitor = new UplinkMonitor(lab, client);
    await monitor.install();
    const up = await vpnns(dirs, ["up", PROFILE]);
    if (up.exitCode !== 0) throw new Error(`vpnns up failed: ${up.all}`);
    await startServices();
  });

  afterAll(async () => {
    await stopServices();
    if (dirs) await vpnns(dirs, ["down", "--all"]);
    await monitor?.remove();
    await lab?.destroy();
  });

  describe("bad input", () => {
    it("rejects an invalid spec", async () => {
      for (const [spec, message] of [
        ["8080:0", 'invalid publish spec "8080:0": invalid namespace port "0": a port is a whole number from 1 to 65535'],
        ["70000:80", 'invalid publish spec "70000:80": invalid host port "70000"'],
        ["192.0.2.999:8080:80", 'invalid publish spec "192.0.2.999:8080:80": invalid host address'],
        ["8080", 'invalid publish spec "8080": expected [host-address:]host-port:namespace-port'],
      ]) {
        const result = await vpnns(dirs, ["publish", PROFILE, spec!]);
        expect(result.exitCode, result.all).toBe(2);
        expect(result.stderr).toContain(message);
      }
    });

    it("rejects an unknown profile", async () => {
      const result = await vpnns(dirs, ["publish", "missing", "8080:80"]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain("profile missing not found");
      expect(await exists(join(dirs.stateDir, "locks", "missing.lock"))).toBe(false);
    });

    it("rejects unpublishing an unknown port", async () => {
      const result = await vpnns(dirs, ["unpublish", PROFILE, "19999"]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain("host port 19999/tcp is not published in profile pub");
    });
  });

  describe("published services", () => {
    let before: string;

    beforeAll(async () => {
      before = await namespaceSnapshot();
      await monitor.reset();
      for (const service of Object.values(SERVICES)) await publish([`${service.host}:${service.inside}`]);
      await publish([`${UDP_HOST}:${UDP_INSIDE}`, "--udp"]);
      await publish([`${UDP6_HOST}:${UDP6_INSIDE}`, "--udp"]);
    });

    it("reaches a service bound to 0.0.0.0", async () => {
      const result = await get(SERVICES.wildcard.host);
      expect(result.status).toBe(200);
      expect(remoteAddressOf(result)).toBe("127.0.0.1");
    });

    it("reaches a service bound to 127.0.0.1", async () => {
      const result = await get(SERVICES.loopback4.host);
      expect(result.status).toBe(200);
      expect(remoteAddressOf(result)).toBe("127.0.0.1");
    });

    it("reaches a service bound to ::1", async () => {
      const result = await get(SERVICES.loopback6.host);
      expect(result.status).toBe(200);
      expect(remoteAddressOf(result)).toBe("::1");
    });

    it("reaches a service bound to the tunnel address", async () => {
      const result = await get(SERVICES.tunnel.host);
      expect(result.status).toBe(200);
      expect(remoteAddressOf(result)).toBe(client.address4);
    });

    /** Send three datagrams to a host port and return the sorted replies. */
    async function udpExchange(port: number): Promise<string[]> {
      const socket = dgram.createSocket("udp4");
      try {
        const replies: string[] = [];
        socket.on("message", (message) => replies.push(message.toString()));
        await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
        for (const text of ["one", "two", "three"]) socket.send(text, port, "127.0.0.1");
        await waitFor(`three UDP replies from port ${port}`, async () => replies.length >= 3);
        return replies.sort();
      } finally {
        socket.close();
      }
    }

    it("relays UDP datagrams both ways", async () => {
      expect(await udpExchange(UDP_HOST)).toEqual(["echo:one", "echo:three", "echo:two"]);
    });

    it("reaches a UDP service on ::1", async () => {
      expect(await udpExchange(UDP6_HOST)).toEqual(["echo:one", "echo:three", "echo:two"]);
    });

    it("serves many parallel connections", async () => {
      const results = await Promise.all(Array.from({ length: 64 }, () => get(SERVICES.wildcard.host, "/bytes?n=100000")));
      for (const result of results) {
        expect(result.status).toBe(200);
        expect(result.body.length).toBe(100_000);
        expect(patternMismatch(result.body, 0)).toBe(-1);
      }
    });

    it("carries a large transfer intact", async () => {
      const size = 256 * 1024 * 1024;
      const result = await rawBytes(SERVICES.wildcard.host, size);
      expect(result.received).toBe(size);
      expect(result.mismatch).toBe(-1);
    });

    it("keeps a slow client's bytes intact", async () => {
      const size = 16 * 1024 * 1024;
      let paused = false;
      const result = await rawBytes(SERVICES.loopback4.host, size, (socket, received) => {
        // Stop reading for 2 s after the first MiB, so every buffer on the way fills up.
        if (!paused && received > 1024 * 1024) {
          paused = true;
          socket.pause();
          setTimeout(() => socket.resume(), 2000);
        }
      });
      expect(paused).toBe(true);
      expect(result.received).toBe(size);
      expect(result.mismatch).toBe(-1);
    });

    it("closes a dropped transfer inside", async () => {
      await rawBytes(SERVICES.wildcard.host, 1024 * 1024 * 1024, (socket, received) => {
        if (received > 4 * 1024 * 1024) socket.destroy();
      });
      // The forwarder's connection to the service must end too, not stream the rest of the GiB.
      await waitFor("no connection to the service inside", async () => {
        const listed = await command(["ip", "netns", "exec", NAMESPACE, "ss", "-H", "-tn", "state", "established", "dport", "=", `:${SERVICES.wildcard.inside}`]);
        return listed.stdout.trim() === "";
      });
      const after = await get(SERVICES.wildcard.host);
      expect(after.status).toBe(200);
    });

    it("keeps only loopback and the WireGuard link", async () => {
      const { stdout } = await command(["ip", "-n", NAMESPACE, "-o", "link", "show"]);
      const links = stdout.split("\n").filter(Boolean).map((line) => line.split(": ")[1]!.split("@")[0]);
      expect(links.sort()).toEqual([LINK, "lo"].sort());
    });

    it("adds no route, address or firewall rule", async () => {
      expect(await namespaceSnapshot()).toBe(before);
    });

    it("sends nothing new across the uplink", async () => {
      const counts = await monitor.read();
      expect(counts.other_out).toBe(0);
      expect(counts.other_in).toBe(0);
      expect(counts.tunnel_address).toBe(0);
    });

    it("shows the ports in status", async () => {
      const report = await statusOf(dirs);
      const published = report.publishing.ports.map((port) => `${port.hostAddress}:${port.hostPort}:${port.namespacePort}/${port.protocol} ${port.listening}`);
      expect(published).toEqual([
        "127.0.0.1:18080:8080/tcp true",
        "127.0.0.1:18081:8081/tcp true",
        "127.0.0.1:18082:8082/tcp true",
        "127.0.0.1:18083:8083/tcp true",
        "127.0.0.1:15300:5300/udp true",
        "127.0.0.1:15301:5301/udp true",
      ]);
      expect(report.publishing.supervisorPid).toBeGreaterThan(0);
      const forwarder = report.processes.find((entry) => entry.pid === report.publishing.forwarderPid);
      expect(forwarder?.uid).toBe(65534);
      expect(forwarder?.app).toBe("vpnns publish forwarder");
      const text = await vpnns(dirs, ["status", PROFILE]);
      expect(text.stdout).toContain("published:  127.0.0.1:18080/tcp to port 8080 inside (listening)");
    });

    it("survives the forwarder being killed", async () => {
      const first = (await statusOf(dirs)).publishing;
      expect(first.forwarderPid).not.toBeNull();
      process.kill(first.forwarderPid!, "SIGKILL");
      // The first request may wait for the new forwarder, but it must not fail.
      const result = await get(SERVICES.wildcard.host);
      expect(result.status).toBe(200);
      const second = (await statusOf(dirs)).publishing;
      expect(second.forwarderPid).not.toBe(first.forwarderPid);
      expect(second.forwarderRestarts).toBe(first.forwarderRestarts + 1);
    });

    it("names the owner of a busy port", async () => {
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(18099, "127.0.0.1", () => resolve()));
      try {
        const result = await vpnns(dirs, ["publish", PROFILE, "18099:8080"]);
        expect(result.exitCode).toBe(1);
        expect(result.stderr).toContain(`host port 127.0.0.1:18099/tcp is already in use by node (pid ${process.pid})`);
        const report = await statusOf(dirs);
        expect(report.publishing.ports.map((port) => port.hostPort)).not.toContain(18099);
        expect((await get(SERVICES.wildcard.host)).status).toBe(200);
      } finally {
        server.close();
      }
    });

    it("rejects a duplicate host port", async () => {
      const result = await vpnns(dirs, ["publish", PROFILE, "0.0.0.0:18080:9000"]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain("host port 0.0.0.0:18080/tcp is already published in profile pub as 127.0.0.1:18080:8080/tcp");
    });

    it("closes an unpublished port", async () => {
      const result = await vpnns(dirs, ["unpublish", PROFILE, String(SERVICES.tunnel.host)]);
      expect(result.exitCode, result.all).toBe(0);
      expect(await hostListeners(SERVICES.tunnel.host)).toBe("");
      const report = await statusOf(dirs);
      expect(report.publishing.ports.map((port) => port.hostPort)).not.toContain(SERVICES.tunnel.host);
      await publish([`${SERVICES.tunnel.host}:${SERVICES.tunnel.inside}`]);
    });
  });

  describe("lifecycle", () => {
    it("removes listeners, sockets and processes at down", async () => {
      expect((await publishProcesses(dirs)).length).toBe(2);
      const down = await vpnns(dirs, ["down", PROFILE]);
      expect(down.exitCode, down.all).toBe(0);
      await stopServices();
      expect(await publishProcesses(dirs)).toEqual([]);
      for (const port of [...Object.values(SERVICES).map((service) => service.host), UDP_HOST, UDP6_HOST]) expect(await hostListeners(port)).toBe("");
      expect(await exists(join(dirs.stateDir, PROFILE))).toBe(false);
      const report = await statusOf(dirs);
      expect(report.state).toBe("down");
      expect(report.publishing.ports.every((port) => !port.listening)).toBe(true);
      expect(report.publishing.ports.length).toBe(6);
    });

    it("keeps the list on import --force", async () => {
      const file = join(dirs.configDir, "..", "reimport.conf");
      await writeFile(file, client.profileText, { mode: 0o600 });
      const result = await vpnns(dirs, ["profile", "import", file, "--name", PROFILE, "--force"]);
      expect(result.exitCode, result.all).toBe(0);
      expect((await statusOf(dirs)).publishing.ports.length).toBe(6);
    });

    it("opens the stored list at up", async () => {
      const up = await vpnns(dirs, ["up", PROFILE]);
      expect(up.exitCode, up.all).toBe(0);
      await startServices();
      const result = await get(SERVICES.loopback6.host);
      expect(result.status).toBe(200);
      expect((await statusOf(dirs)).publishing.ports.every((port) => port.listening)).toBe(true);
    });

    it("fails up on a busy port and undoes it", async () => {
      await vpnns(dirs, ["down", PROFILE]);
      await stopServices();
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(SERVICES.loopback4.host, "127.0.0.1", () => resolve()));
      try {
        const up = await vpnns(dirs, ["up", PROFILE]);
        expect(up.exitCode).toBe(1);
        expect(up.stderr).toContain(`host port 127.0.0.1:${SERVICES.loopback4.host}/tcp is already in use by node (pid ${process.pid})`);
        expect(await publishProcesses(dirs)).toEqual([]);
        expect((await command(["ip", "netns", "list"])).stdout).not.toContain(NAMESPACE);
      } finally {
        server.close();
      }
    });

    it("removes everything at cleanup", async () => {
      const up = await vpnns(dirs, ["up", PROFILE]);
      expect(up.exitCode, up.all).toBe(0);
      expect((await publishProcesses(dirs)).length).toBe(2);
      const cleanup = await vpnns(dirs, ["cleanup"]);
      expect(cleanup.exitCode, cleanup.all).toBe(0);
      expect(await publishProcesses(dirs)).toEqual([]);
      expect(await hostListeners(SERVICES.wildcard.host)).toBe("");
    });

    it("stops a supervisor whose namespace is gone", async () => {
      const up = await vpnns(dirs, ["up", PROFILE]);
      expect(up.exitCode, up.all).toBe(0);
      const namespaceLink = await readlink(`/proc/${(await statusOf(dirs)).publishing.supervisorPid}/ns/net`);
      expect(namespaceLink).toBe(await readlink("/proc/self/ns/net"));
      // A crash that lost the namespace: the supervisor notices and ends itself with its forwarder.
      await command(["ip", "netns", "delete", NAMESPACE]);
      await waitFor("the supervisor and forwarder to end", async () => (await publishProcesses(dirs)).length === 0);
      const cleanup = await vpnns(dirs, ["cleanup"]);
      expect(cleanup.exitCode, cleanup.all).toBe(0);
    });

    it("lets run take the profile down", async () => {
      const result = await vpnns(dirs, ["run", "--profile", PROFILE, "--as-root", "--", "true"]);
      expect(result.exitCode, result.all).toBe(0);
      expect(await publishProcesses(dirs)).toEqual([]);
      expect((await command(["ip", "netns", "list"])).stdout).not.toContain(NAMESPACE);
    });
  });
});
