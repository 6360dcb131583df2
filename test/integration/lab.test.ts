/**
 * The lab provider, checked with a client built by hand: a namespace whose only link is a
 * wireguard-go interface created here and moved in, configured from the lab's wg-quick profile.
 * Runs only inside test/sandbox.sh, and imports the lab from dist/ (npm run build first).
 */
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it, test } from "vitest";
import type { Lab, LabClient } from "../../src/lab/lab.js";
import { run, type RunResult } from "../../src/tools/exec.js";

const sandboxed = process.env.VPNNS_SANDBOX === "1";
const SKIP_REASON = "needs root and a private network sandbox: run test/sandbox.sh npx vitest run test/integration/lab.test.ts";

/** Milliseconds to wait for a request that must fail, because the tunnel drops it silently. */
const UNREACHABLE_TIMEOUT_MS = 1500;
/** Milliseconds to wait for a request that must succeed, including the WireGuard handshake. */
const REACHABLE_TIMEOUT_MS = 10_000;

/**
 * Fetches a URL from inside a namespace with Node's fetch. Prints the body, or with "--digest" its
 * length and SHA-256, and exits with 1 on failure.
 */
const FETCH_SCRIPT = `
const [url, timeout, mode] = process.argv.slice(1);
fetch(url, { signal: AbortSignal.timeout(Number(timeout)) })
  .then(async (response) => {
    const body = Buffer.from(await response.arrayBuffer());
    if (mode !== "--digest") return process.stdout.write(body);
    const digest = require("node:crypto").createHash("sha256").update(body).digest("hex");
    process.stdout.write(body.length + " " + digest);
  })
  .catch((error) => {
    process.stderr.write(String(error.cause ?? error));
    process.exit(1);
  });
`;

function fetchIn(namespace: string, url: string, timeoutMs: number, mode = ""): Promise<RunResult> {
  return run(["ip", "netns", "exec", namespace, process.execPath, "-e", FETCH_SCRIPT, url, String(timeoutMs), mode], {
    intent: `fetch ${url} in ${namespace}`,
    allowFailure: true,
    timeout: timeoutMs + 10_000,
  });
}

async function fetchJsonIn(namespace: string, url: string): Promise<{ service: string; remoteAddress: string }> {
  const result = await fetchIn(namespace, url, REACHABLE_TIMEOUT_MS);
  if (result.exitCode !== 0) throw new Error(`fetch ${url} in ${namespace} failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as { service: string; remoteAddress: string };
}

/** Returns the value of the first "Key = value" line of a wg-quick file, or undefined. */
function profileValue(profileText: string, key: string): string | undefined {
  const line = profileText.split("\n").find((candidate) => candidate.startsWith(`${key} = `));
  return line?.slice(key.length + 3);
}

/** Lists this sandbox's running wireguard-go processes with the interface each was started for, leaving out zombies. */
async function wireguardGoProcesses(): Promise<Array<{ pid: number; interfaceName: string }>> {
  const found = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      if (!stat.includes("(wireguard-go)") || stat.slice(stat.lastIndexOf(")") + 2)[0] === "Z") continue;
      // Daemons of other sandboxes running at the same time lack this run's VPNNS_SANDBOX_ID.
      const sandboxId = process.env.VPNNS_SANDBOX_ID;
      const environment = (await readFile(`/proc/${entry}/environ`, "utf8")).split("\0");
      if (sandboxId !== undefined && !environment.includes(`VPNNS_SANDBOX_ID=${sandboxId}`)) continue;
      const argv = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0");
      found.push({ pid: Number(entry), interfaceName: argv[1] ?? "" });
    } catch {
      // The process exited during the scan.
    }
  }
  return found;
}

async function ip(args: string[]): Promise<RunResult> {
  return run(["ip", ...args], { intent: `run ip ${args.join(" ")}`, mutates: true });
}

/** A client namespace set up from a lab profile, the way vpnns does it, but by hand. */
class HandMadeClient {
  readonly namespace: string;
  readonly interfaceName: string;

  constructor(
    readonly lab: Lab,
    readonly client: LabClient,
  ) {
    this.namespace = `lab-${lab.id}-client`;
    this.interfaceName = `lab${lab.id}c1`;
  }

  async connect(): Promise<void> {
    const { namespace, interfaceName } = this;
    const text = this.client.profileText;
    await ip(["netns", "add", namespace]);

    // Created here, so its UDP socket stays in this namespace, then moved into the client namespace.
    await run(["wireguard-go", interfaceName], {
      intent: `start wireguard-go for ${interfaceName}`,
      env: { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1" },
      mutates: true,
    });
    await ip(["link", "set", interfaceName, "netns", namespace]);

    // wg setconf rejects the wg-quick keys, so they are dropped first. The file sits in a 0700
    // folder on the sandbox's private /run, because run() passes stdin as a socket, which
    // `wg setconf IF /dev/stdin` cannot open.
    const wgConfig = text
      .split("\n")
      .filter((line) => !/^(Address|DNS) = /.test(line))
      .join("\n");
    const folder = `/run/lab-${this.lab.id}-client-config`;
    await mkdir(folder, { mode: 0o700 });
    try {
      await writeFile(`${folder}/wg.conf`, wgConfig, { mode: 0o600 });
      await run(["wg", "setconf", interfaceName, `${folder}/wg.conf`], { intent: `configure ${interfaceName}`, mutates: true });
    } finally {
      await rm(folder, { recursive: true, force: true });
    }

    for (const address of (profileValue(text, "Address") ?? "").split(", ")) {
      await ip(["-n", namespace, "addr", "add", address, "dev", interfaceName, ...(address.includes(":") ? ["nodad"] : [])]);
    }
    await ip(["-n", namespace, "link", "set", "lo", "up"]);
    await ip(["-n", namespace, "link", "set", interfaceName, "up"]);
    await ip(["-n", namespace, "route", "add", "default", "dev", interfaceName]);
    await ip(["-n", namespace, "-6", "route", "add", "default", "dev", interfaceName]);
    await this.writeResolvConf(profileValue(text, "DNS") ?? "");
  }

  /** Writes the namespace's resolv.conf, which `ip netns exec` mounts over /etc/resolv.conf. */
  async writeResolvConf(nameserver: string): Promise<void> {
    await mkdir(`/etc/netns/${this.namespace}`, { recursive: true });
    await writeFile(`/etc/netns/${this.namespace}/resolv.conf`, `nameserver ${nameserver}\noptions timeout:2 attempts:2\n`);
  }

  async getent(database: string, name: string): Promise<RunResult> {
    return run(["ip", "netns", "exec", this.namespace, "getent", database, name], {
      intent: `resolve ${name} in ${this.namespace}`,
      allowFailure: true,
    });
  }

  /** Removes the namespace and its /etc/netns folder. Deleting the interface makes its wireguard-go exit. */
  async disconnect(): Promise<void> {
    await run(["ip", "-n", this.namespace, "link", "del", this.interfaceName], { intent: "delete the client interface", allowFailure: true });
    await run(["ip", "netns", "del", this.namespace], { intent: "delete the client namespace", allowFailure: true });
    await rm(`/etc/netns/${this.namespace}`, { recursive: true, force: true });
  }
}

if (!sandboxed) test.skip(`lab tests skipped: ${SKIP_REASON}`, () => {});

describe.runIf(sandboxed)("lab", () => {
  let labModule: typeof import("../../src/lab/lab.js");
  let lab: Lab;
  let client: LabClient;
  let handMade: HandMadeClient;
  let patternBytes: (n: number) => Buffer;

  beforeAll(async () => {
    labModule = (await import("../../dist/lab/lab.js")) as typeof import("../../src/lab/lab.js");
    const httpModule = (await import("../../dist/lab/http-server.js")) as typeof import("../../src/lab/http-server.js");
    patternBytes = httpModule.patternBytes;
    lab = await labModule.createLab();
    client = await lab.addClient();
    handMade = new HandMadeClient(lab, client);
    await handMade.connect();
  });

  afterAll(async () => {
    await handMade?.disconnect();
    await lab?.destroy();
  });

  it("profile has both families and DNS", () => {
    const text = client.profileText;
    expect(client.name).toBe("client1");
    expect(client.address4).toBe("192.0.2.10");
    expect(client.address6).toBe("2001:db8:2::a");
    expect(profileValue(text, "Address")).toBe("192.0.2.10/32, 2001:db8:2::a/128");
    expect(profileValue(text, "DNS")).toBe(lab.serviceAddress4);
    expect(profileValue(text, "Endpoint")).toBe(lab.endpoint4);
    expect(profileValue(text, "AllowedIPs")).toBe("0.0.0.0/0, ::/0");
    expect(profileValue(text, "PersistentKeepalive")).toBeUndefined();
    expect(profileValue(text, "PrivateKey")).toMatch(/^[A-Za-z0-9+/]{43}=$/);
  });

  it("HTTP through the tunnel over IPv4", async () => {
    const info = await fetchJsonIn(handMade.namespace, `http://${lab.serviceAddress4}/`);
    expect(info.service).toBe("vpnns-lab");
    expect(info.remoteAddress).toBe(client.address4);
  });

  it("HTTP through the tunnel over IPv6", async () => {
    const info = await fetchJsonIn(handMade.namespace, `http://[${lab.serviceAddress6}]/`);
    expect(info.service).toBe("vpnns-lab");
    expect(info.remoteAddress).toBe(client.address6);
  });

  it("bytes endpoint streams the pattern", async () => {
    const n = 3_000_000;
    const result = await fetchIn(handMade.namespace, `http://${lab.serviceAddress4}/bytes?n=${n}`, REACHABLE_TIMEOUT_MS, "--digest");
    expect(result.stderr).toBe("");
    const expected = createHash("sha256").update(patternBytes(n)).digest("hex");
    expect(result.stdout).toBe(`${n} ${expected}`);
  });

  it("bytes endpoint rejects invalid sizes", async () => {
    const result = await fetchIn(handMade.namespace, `http://${lab.serviceAddress4}/bytes?n=${2 ** 30 + 1}`, REACHABLE_TIMEOUT_MS);
    expect(result.stdout).toMatch(/^invalid n/);
  });

  it("host side serves HTTP to the host", async () => {
    for (const url of [`http://${lab.hostAddress4}:${lab.hostHttpPort}/`, `http://[${lab.hostAddress6}]:${lab.hostHttpPort}/`]) {
      const response = await fetch(url, { signal: AbortSignal.timeout(REACHABLE_TIMEOUT_MS) });
      const info = (await response.json()) as { service: string };
      expect(info.service).toBe("vpnns-lab-host");
    }
  });

  it("host side unreachable through the tunnel", async () => {
    for (const url of [`http://${lab.hostAddress4}:${lab.hostHttpPort}/`, `http://[${lab.hostAddress6}]:${lab.hostHttpPort}/`]) {
      const result = await fetchIn(handMade.namespace, url, UNREACHABLE_TIMEOUT_MS);
      expect(result.exitCode, `${url} answered: ${result.stdout}`).not.toBe(0);
    }
  });

  it("provider does not forward", async () => {
    const keys = ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"];
    const result = await run(["ip", "netns", "exec", lab.providerNamespace, "sysctl", "-n", ...keys], {
      intent: "read the provider's forwarding settings",
    });
    expect(result.stdout.split("\n").slice(0, 2)).toEqual(["0", "0"]);
  });

  it("second lab in namespace is rejected", async () => {
    await expect(labModule.createLab()).rejects.toThrow(/already assigned to lab/);
    const namespaces = await run(["ip", "netns", "list"], { intent: "list namespaces" });
    expect(namespaces.stdout).toContain(lab.providerNamespace);
    const info = await fetchJsonIn(handMade.namespace, `http://${lab.serviceAddress4}/`);
    expect(info.remoteAddress).toBe(client.address4);
  });

  it("createLab rejects an invalid id", async () => {
    await expect(labModule.createLab({ id: "Lab-1" })).rejects.toThrow(/invalid lab id/);
    await expect(labModule.createLab({ id: "abcdefghijk" })).rejects.toThrow(/invalid lab id/);
  });

  it("DNS resolves names over IPv4", async () => {
    const hosts = await handMade.getent("hosts", lab.serviceName);
    expect(hosts.exitCode).toBe(0);
    expect(hosts.stdout).toContain(lab.serviceName);

    const v4 = await handMade.getent("ahostsv4", lab.serviceName);
    expect(v4.stdout.split(/\s+/)).toContain(lab.serviceAddress4);
    const v6 = await handMade.getent("ahostsv6", lab.serviceName);
    expect(v6.stdout.split(/\s+/)).toContain(lab.serviceAddress6);
    const host = await handMade.getent("ahostsv4", "host.vpnns.test");
    expect(host.stdout.split(/\s+/)).toContain(lab.hostAddress4);
  });

  it("DNS returns NXDOMAIN for other names", async () => {
    const result = await handMade.getent("hosts", "missing.vpnns.test");
    // getent exits with 2 when a key is not found.
    expect(result.exitCode).toBe(2);
  });

  it("DNS answers over IPv6", async () => {
    await handMade.writeResolvConf(lab.serviceAddress6);
    try {
      const v4 = await handMade.getent("ahostsv4", lab.serviceName);
      expect(v4.stdout.split(/\s+/)).toContain(lab.serviceAddress4);
      const v6 = await handMade.getent("ahostsv6", lab.serviceName);
      expect(v6.stdout.split(/\s+/)).toContain(lab.serviceAddress6);
    } finally {
      await handMade.writeResolvConf(lab.serviceAddress4);
    }
  });

  it("IPv6 endpoint carries the tunnel", async () => {
    const serverKey = profileValue(client.profileText, "PublicKey") ?? "";
    await run(["wg", "set", handMade.interfaceName, "peer", serverKey, "endpoint", lab.endpoint6], {
      intent: "switch the client to the IPv6 endpoint",
      mutates: true,
    });
    const info = await fetchJsonIn(handMade.namespace, `http://${lab.serviceAddress4}/`);
    expect(info.remoteAddress).toBe(client.address4);

    // The provider saw the client's packets arrive from the host's IPv6 uplink address.
    const endpoints = await run(["ip", "netns", "exec", lab.providerNamespace, "wg", "show", "all", "endpoints"], {
      intent: "list the provider's peer endpoints",
    });
    const line = endpoints.stdout.split("\n").find((candidate) => candidate.includes(client.publicKey));
    expect(line).toContain(`[${lab.hostAddress6}]:`);
  });

  it("addClient applies its options", async () => {
    const second = await lab.addClient({ ipv6: false, dns: false, keepalive: 25, endpoint: "ipv6" });
    expect(second.name).toBe("client2");
    expect(second.address4).toBe("192.0.2.11");
    expect(second.address6).toBe("2001:db8:2::b");
    expect(second.publicKey).not.toBe(client.publicKey);
    expect(profileValue(second.profileText, "Address")).toBe("192.0.2.11/32");
    expect(profileValue(second.profileText, "DNS")).toBeUndefined();
    expect(profileValue(second.profileText, "AllowedIPs")).toBe("0.0.0.0/0");
    expect(profileValue(second.profileText, "Endpoint")).toBe("[2001:db8:1::2]:51820");
    expect(profileValue(second.profileText, "PersistentKeepalive")).toBe("25");
  });

  it("addClient rejects an invalid keepalive", async () => {
    await expect(lab.addClient({ keepalive: 0 })).rejects.toThrow(/invalid keepalive/);
    await expect(lab.addClient({ keepalive: 1.5 })).rejects.toThrow(/invalid keepalive/);
  });

  it("cutTunnel stops traffic", async () => {
    const before = await fetchIn(handMade.namespace, `http://${lab.serviceAddress4}/`, REACHABLE_TIMEOUT_MS);
    expect(before.exitCode).toBe(0);

    await lab.cutTunnel();
    const after = await fetchIn(handMade.namespace, `http://${lab.serviceAddress4}/`, UNREACHABLE_TIMEOUT_MS);
    expect(after.exitCode).not.toBe(0);
    const running = await wireguardGoProcesses();
    expect(running.map((entry) => entry.interfaceName)).toEqual([handMade.interfaceName]);
    await expect(lab.addClient()).rejects.toThrow(/tunnel was cut/);
  });

  it("destroy removes namespaces, links and processes", async () => {
    await lab.destroy();
    await lab.destroy();

    const namespaces = await run(["ip", "netns", "list"], { intent: "list namespaces" });
    expect(namespaces.stdout).not.toContain(lab.providerNamespace);
    const link = await run(["ip", "link", "show", lab.uplinkInterface], { intent: "look up the uplink", allowFailure: true });
    expect(link.exitCode).not.toBe(0);
    const running = await wireguardGoProcesses();
    expect(running.map((entry) => entry.interfaceName)).toEqual([handMade.interfaceName]);
    expect(await readdir("/var/run/wireguard")).toEqual([`${handMade.interfaceName}.sock`]);
    await expect(fetch(`http://${lab.hostAddress4}:${lab.hostHttpPort}/`)).rejects.toThrow();
    await expect(lab.addClient()).rejects.toThrow(/destroyed/);
  });
});
