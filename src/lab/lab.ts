/**
 * A local WireGuard provider for tests and the demo. The current network namespace plays the
 * user's host namespace. A veth pair links it to a provider namespace, which runs a wireguard-go
 * server, an HTTP service and a DNS server at the tunnel addresses, and does not forward packets.
 *
 *   current namespace                          provider namespace "lab-<id>-provider"
 *   lab<id>up 198.18.0.1, 2001:db8:1::1  <-->  lab<id>pr 198.18.0.2, 2001:db8:1::2 (UDP 51820)
 *   HTTP on port 8080                          lab<id>wg 192.0.2.1, 2001:db8:2::1: HTTP 80, DNS 53
 *
 * The addresses are fixed, so only one lab can run in a namespace at a time.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { VpnnsError } from "../core/errors.js";
import { logCommand, warn } from "../core/log.js";
import { formatCommand, run } from "../tools/exec.js";
import { createRequestHandler, startHttpService, type HttpService } from "./http-server.js";
import { listProcessesInNamespaces, namespaceKey, terminateProcesses } from "./processes.js";
import { assertPrivateNamespaces } from "./sandbox.js";
import { keyToHex, setDevice, WIREGUARD_SOCKET_DIR } from "./uapi.js";
import {
  clientAddress4,
  clientAddress6,
  FIRST_CLIENT_HOST,
  HOST_ADDRESS4,
  HOST_ADDRESS6,
  HOST_HTTP_PORT,
  HOST_NAME,
  HOST_SERVICE,
  LAST_CLIENT_HOST,
  PROVIDER_UPLINK_ADDRESS4,
  PROVIDER_UPLINK_ADDRESS6,
  READY_LINE,
  SERVICE_ADDRESS4,
  SERVICE_ADDRESS6,
  SERVICE_NAME,
  TUNNEL_PREFIX4,
  TUNNEL_PREFIX6,
  UPLINK_PREFIX4,
  UPLINK_PREFIX6,
  WIREGUARD_PORT,
} from "./topology.js";

export interface LabOptions {
  /** Lowercase letters and digits, at most 10, so every interface name fits 15 characters. Defaults to one derived from the pid. */
  id?: string;
}

export interface AddClientOptions {
  /** Give the client an IPv6 address and route ::/0 through the tunnel (default true). */
  ipv6?: boolean;
  /** Address family of the provider endpoint in the profile (default "ipv4"). */
  endpoint?: "ipv4" | "ipv6";
  /** Write `DNS = 192.0.2.1` into the profile (default true). */
  dns?: boolean;
  /** PersistentKeepalive in seconds, 1 to 65535. The profile has none unless it is given. */
  keepalive?: number;
  /** Give the peer a PresharedKey, on both the provider and the profile (default false). */
  presharedKey?: boolean;
}

export interface LabClient {
  /** "client1", "client2" and so on, in the order of addClient calls. */
  name: string;
  /** A complete wg-quick file for the client. */
  profileText: string;
  /** The client's tunnel addresses without prefix length, such as "192.0.2.10" and "2001:db8:2::a". */
  address4: string;
  address6: string;
  publicKey: string;
}

export interface Lab {
  id: string;
  providerNamespace: string;
  /** Host-side end of the veth pair to the provider. */
  uplinkInterface: string;
  endpoint4: string;
  endpoint6: string;
  /** Host-side uplink addresses, where hostHttpPort serves HTTP. */
  hostAddress4: string;
  hostAddress6: string;
  /** Port of an HTTP service on the host side that must stay unreachable from inside a profile. */
  hostHttpPort: number;
  /** The provider's addresses inside the tunnel, with HTTP on port 80 and DNS on port 53. */
  serviceAddress4: string;
  serviceAddress6: string;
  /** A name that the lab's DNS server resolves to the service addresses. */
  serviceName: string;
  /** Adds a peer to the provider and returns its wg-quick profile. */
  addClient(options?: AddClientOptions): Promise<LabClient>;
  /** Stops the provider's wireguard-go, so the tunnel carries nothing. It cannot be restarted. */
  cutTunnel(): Promise<void>;
  /** Removes every namespace, link, process and file the lab made. Safe to call twice. */
  destroy(): Promise<void>;
}

const WIREGUARD_GO_ENV = { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1" };
const LAB_ID = /^[a-z0-9]{1,10}$/;
const SERVERS_READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;

let labsCreated = 0;

function defaultLabId(): string {
  const id = `${process.pid.toString(36)}${labsCreated.toString(36)}`;
  labsCreated += 1;
  return id;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function generateKeyPair(): Promise<{ privateKey: string; publicKey: string }> {
  const privateKey = (await run(["wg", "genkey"], { intent: "generate a WireGuard private key", secretOutput: true })).stdout.trim();
  const { stdout } = await run(["wg", "pubkey"], { intent: "derive a WireGuard public key", input: `${privateKey}\n` });
  return { privateKey, publicKey: stdout.trim() };
}

/** Formats a wg-quick file for one client of the lab. */
function formatClientProfile(options: {
  privateKey: string;
  addresses: string[];
  dns?: string;
  serverPublicKey: string;
  endpoint: string;
  allowedIPs: string[];
  keepalive?: number;
  presharedKey?: string;
}): string {
  const lines = ["[Interface]", `PrivateKey = ${options.privateKey}`, `Address = ${options.addresses.join(", ")}`];
  if (options.dns !== undefined) lines.push(`DNS = ${options.dns}`);
  lines.push("", "[Peer]", `PublicKey = ${options.serverPublicKey}`, `Endpoint = ${options.endpoint}`);
  if (options.presharedKey !== undefined) lines.push(`PresharedKey = ${options.presharedKey}`);
  lines.push(`AllowedIPs = ${options.allowedIPs.join(", ")}`);
  if (options.keepalive !== undefined) lines.push(`PersistentKeepalive = ${options.keepalive}`);
  return `${lines.join("\n")}\n`;
}

/** Waits for the servers process to print the ready line, and rejects if it exits or times out first. */
function waitForReady(child: ChildProcess, commandLine: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = "";
    const fail = (reason: string): void => {
      cleanUp();
      reject(new VpnnsError(`failed to start the lab servers: '${commandLine}' ${reason}`));
    };
    const onData = (chunk: Buffer): void => {
      output += chunk.toString("utf8");
      if (output.split("\n").includes(READY_LINE)) {
        cleanUp();
        resolve();
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      fail(`exited (${signal ?? `code ${code}`}) before printing "${READY_LINE}", see its stderr above`);
    };
    const onError = (error: Error): void => fail(`could not be started: ${error.message}`);
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(`printed no "${READY_LINE}" within ${SERVERS_READY_TIMEOUT_MS} ms`);
    }, SERVERS_READY_TIMEOUT_MS);
    const cleanUp = (): void => {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.off("exit", onExit);
      child.off("error", onError);
      // Keep reading, so a later write by the child never blocks on a full pipe.
      child.stdout?.resume();
    };
    child.stdout?.on("data", onData);
    child.once("exit", onExit);
    child.once("error", onError);
  });
}

/** Sends SIGTERM to a child process, then SIGKILL after graceMs, and resolves once it has exited. */
function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

class LocalLab implements Lab {
  readonly providerNamespace: string;
  readonly uplinkInterface: string;
  readonly endpoint4 = `${PROVIDER_UPLINK_ADDRESS4}:${WIREGUARD_PORT}`;
  readonly endpoint6 = `[${PROVIDER_UPLINK_ADDRESS6}]:${WIREGUARD_PORT}`;
  readonly hostAddress4 = HOST_ADDRESS4;
  readonly hostAddress6 = HOST_ADDRESS6;
  readonly hostHttpPort = HOST_HTTP_PORT;
  readonly serviceAddress4 = SERVICE_ADDRESS4;
  readonly serviceAddress6 = SERVICE_ADDRESS6;
  readonly serviceName = SERVICE_NAME;

  /** The provider's end of the veth pair. */
  private readonly providerUplinkInterface: string;
  /** The provider's WireGuard interface. */
  private readonly tunnelInterface: string;
  private serverPublicKey = "";
  private clientCount = 0;
  private serversProcess: ChildProcess | undefined;
  private hostHttp: HttpService | undefined;
  /** Objects that start() has made so far, so destroy() removes only the lab's own. */
  private readonly made = { namespace: false, uplink: false, tunnel: false };
  private tunnelCut = false;
  private destroying: Promise<void> | undefined;

  constructor(readonly id: string) {
    this.providerNamespace = `lab-${id}-provider`;
    this.uplinkInterface = `lab${id}up`;
    this.providerUplinkInterface = `lab${id}pr`;
    this.tunnelInterface = `lab${id}wg`;
  }

  async start(): Promise<void> {
    await this.checkAddressesFree();
    await this.createUplink();
    await this.startWireGuard();
    await this.startServers();
    const handler = createRequestHandler(HOST_SERVICE, (message) => warn(`lab ${this.id} host HTTP: ${message}`));
    this.hostHttp = await startHttpService(handler, [HOST_ADDRESS4, HOST_ADDRESS6], HOST_HTTP_PORT);
  }

  private async checkAddressesFree(): Promise<void> {
    const { stdout } = await run(["ip", "-o", "addr", "show"], { intent: "list addresses" });
    for (const line of stdout.split("\n")) {
      const match = /^\d+:\s+(\S+)\s+inet6?\s+([^/\s]+)\//.exec(line);
      if (match && (match[2] === HOST_ADDRESS4 || match[2] === HOST_ADDRESS6)) {
        throw new VpnnsError(
          `cannot create lab ${this.id}: address ${match[2]} is already assigned to ${match[1]} in this network namespace; destroy the other lab first`,
        );
      }
    }
  }

  private async createUplink(): Promise<void> {
    const namespace = this.providerNamespace;
    const host = this.uplinkInterface;
    const provider = this.providerUplinkInterface;
    const ip = (args: string[], intent: string) => run(["ip", ...args], { intent, mutates: true });

    await ip(["netns", "add", namespace], `create namespace ${namespace}`);
    this.made.namespace = true;
    await ip(["link", "add", host, "type", "veth", "peer", "name", provider, "netns", namespace], `create veth pair ${host}`);
    this.made.uplink = true;

    // nodad makes the IPv6 addresses usable at once, so servers can bind them without waiting for DAD.
    await ip(["addr", "add", `${HOST_ADDRESS4}/${UPLINK_PREFIX4}`, "dev", host], `add an address to ${host}`);
    await ip(["-6", "addr", "add", `${HOST_ADDRESS6}/${UPLINK_PREFIX6}`, "dev", host, "nodad"], `add an address to ${host}`);
    await ip(["link", "set", host, "up"], `bring up ${host}`);
    await ip(["-n", namespace, "link", "set", "lo", "up"], `bring up lo in ${namespace}`);
    await ip(["-n", namespace, "addr", "add", `${PROVIDER_UPLINK_ADDRESS4}/${UPLINK_PREFIX4}`, "dev", provider], `add an address to ${provider}`);
    await ip(
      ["-n", namespace, "-6", "addr", "add", `${PROVIDER_UPLINK_ADDRESS6}/${UPLINK_PREFIX6}`, "dev", provider, "nodad"],
      `add an address to ${provider}`,
    );
    await ip(["-n", namespace, "link", "set", provider, "up"], `bring up ${provider}`);

    // A new namespace copies net.ipv4.ip_forward from the machine's initial namespace, which may
    // have it on. With forwarding off, tunnel traffic to the host side ends at the provider.
    await run(
      [
        "ip", "netns", "exec", namespace, "sysctl", "-q", "-w",
        "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0", "net.ipv6.conf.default.forwarding=0",
      ],
      { intent: `turn off forwarding in ${namespace}`, mutates: true },
    );
  }

  private async startWireGuard(): Promise<void> {
    const namespace = this.providerNamespace;
    const tunnel = this.tunnelInterface;
    const keys = await generateKeyPair();
    this.serverPublicKey = keys.publicKey;

    // Started inside the provider namespace, so its UDP socket listens there.
    await run(["ip", "netns", "exec", namespace, "wireguard-go", tunnel], {
      intent: `start wireguard-go for ${tunnel} in ${namespace}`,
      env: WIREGUARD_GO_ENV,
      mutates: true,
    });
    this.made.tunnel = true;
    // The private key goes over the UAPI socket, so it is never on a command line or in a file.
    await setDevice(tunnel, [`private_key=${keyToHex(keys.privateKey)}`, `listen_port=${WIREGUARD_PORT}`]);

    const ip = (args: string[], intent: string) => run(["ip", "-n", namespace, ...args], { intent, mutates: true });
    await ip(["addr", "add", `${SERVICE_ADDRESS4}/${TUNNEL_PREFIX4}`, "dev", tunnel], `add an address to ${tunnel}`);
    await ip(["-6", "addr", "add", `${SERVICE_ADDRESS6}/${TUNNEL_PREFIX6}`, "dev", tunnel, "nodad"], `add an address to ${tunnel}`);
    await ip(["link", "set", tunnel, "up"], `bring up ${tunnel}`);
  }

  private async startServers(): Promise<void> {
    const script = fileURLToPath(new URL("../lab/servers.js", import.meta.url));
    const argv = [
      "ip", "netns", "exec", this.providerNamespace, process.execPath, script,
      "--address4", SERVICE_ADDRESS4,
      "--address6", SERVICE_ADDRESS6,
      "--zone", `${SERVICE_NAME}=${SERVICE_ADDRESS4},${SERVICE_ADDRESS6}`,
      "--zone", `${HOST_NAME}=${HOST_ADDRESS4},${HOST_ADDRESS6}`,
    ];
    const commandLine = formatCommand(argv);
    logCommand(commandLine);
    // run() waits for a command to finish, but this one serves until the lab stops it, so it is spawned.
    // Its stdin stays open, and the servers exit when it closes, which also happens when this process dies.
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "inherit"], env: { ...process.env, LC_ALL: "C" } });
    this.serversProcess = child;
    await waitForReady(child, commandLine);
  }

  async addClient(options: AddClientOptions = {}): Promise<LabClient> {
    if (this.destroying) throw new VpnnsError(`cannot add a client to lab ${this.id}: the lab is destroyed`);
    if (this.tunnelCut) throw new VpnnsError(`cannot add a client to lab ${this.id}: its tunnel was cut; create a new lab`);
    const { ipv6 = true, endpoint = "ipv4", dns = true, keepalive, presharedKey = false } = options;
    if (keepalive !== undefined && !(Number.isInteger(keepalive) && keepalive >= 1 && keepalive <= 65535)) {
      throw new VpnnsError(`invalid keepalive ${keepalive}: expected whole seconds from 1 to 65535`);
    }
    const hostNumber = FIRST_CLIENT_HOST + this.clientCount;
    if (hostNumber > LAST_CLIENT_HOST) {
      throw new VpnnsError(`cannot add a client to lab ${this.id}: all ${LAST_CLIENT_HOST - FIRST_CLIENT_HOST + 1} client addresses are used`);
    }
    this.clientCount += 1;

    const name = `client${this.clientCount}`;
    const address4 = clientAddress4(hostNumber);
    const address6 = clientAddress6(hostNumber);
    const keys = await generateKeyPair();
    await run(
      ["ip", "netns", "exec", this.providerNamespace, "wg", "set", this.tunnelInterface,
        "peer", keys.publicKey, "allowed-ips", `${address4}/32,${address6}/128`],
      { intent: `add peer ${name} to ${this.tunnelInterface}`, mutates: true },
    );
    let generatedPresharedKey: string | undefined;
    if (presharedKey) {
      generatedPresharedKey = (await run(["wg", "genpsk"], { intent: "generate a WireGuard preshared key", secretOutput: true })).stdout.trim();
      // Like the private key, the preshared key goes over the UAPI socket, never on a command line.
      await setDevice(this.tunnelInterface, [`public_key=${keyToHex(keys.publicKey)}`, `preshared_key=${keyToHex(generatedPresharedKey)}`]);
    }

    const profileText = formatClientProfile({
      privateKey: keys.privateKey,
      addresses: ipv6 ? [`${address4}/32`, `${address6}/128`] : [`${address4}/32`],
      dns: dns ? SERVICE_ADDRESS4 : undefined,
      serverPublicKey: this.serverPublicKey,
      endpoint: endpoint === "ipv6" ? this.endpoint6 : this.endpoint4,
      allowedIPs: ipv6 ? ["0.0.0.0/0", "::/0"] : ["0.0.0.0/0"],
      keepalive,
      presharedKey: generatedPresharedKey,
    });
    return { name, profileText, address4, address6, publicKey: keys.publicKey };
  }

  /** Stops the processes whose network namespace is the provider's, or only those with the given command name. */
  private async stopProviderProcesses(name?: string): Promise<void> {
    const key = await namespaceKey(`/run/netns/${this.providerNamespace}`);
    if (key === undefined) return;
    const processes = await listProcessesInNamespaces(new Set([key]));
    const pids = processes.filter((entry) => name === undefined || entry.name === name).map((entry) => entry.pid);
    await terminateProcesses(pids, STOP_GRACE_MS);
  }

  async cutTunnel(): Promise<void> {
    if (this.destroying) throw new VpnnsError(`cannot cut the tunnel of lab ${this.id}: the lab is destroyed`);
    if (this.tunnelCut) return;
    // wireguard-go removes its interface and UAPI socket when it exits.
    await this.stopProviderProcesses("wireguard-go");
    this.tunnelCut = true;
  }

  destroy(): Promise<void> {
    this.destroying ??= this.tearDown();
    return this.destroying;
  }

  private async tearDown(): Promise<void> {
    const failures: string[] = [];
    const step = async (intent: string, action: () => Promise<unknown>): Promise<void> => {
      try {
        await action();
      } catch (error) {
        failures.push(`failed to ${intent}: ${errorMessage(error)}`);
      }
    };
    const namespace = this.providerNamespace;

    await step("close the host-side HTTP service", async () => this.hostHttp?.close());
    const servers = this.serversProcess;
    if (servers) await step("stop the lab servers", () => stopChild(servers, STOP_GRACE_MS));
    if (this.made.namespace) await step(`stop the processes in ${namespace}`, () => this.stopProviderProcesses());

    if (this.made.uplink) {
      await step(`delete ${this.uplinkInterface}`, async () => {
        const shown = await run(["ip", "link", "show", this.uplinkInterface], { intent: "look up the uplink", allowFailure: true });
        if (shown.exitCode !== 0) return;
        await run(["ip", "link", "del", this.uplinkInterface], { intent: `delete ${this.uplinkInterface}`, mutates: true });
      });
    }
    if (this.made.namespace) {
      await step(`delete namespace ${namespace}`, async () => {
        if ((await namespaceKey(`/run/netns/${namespace}`)) === undefined) return;
        await run(["ip", "netns", "del", namespace], { intent: `delete namespace ${namespace}`, mutates: true });
      });
    }
    if (this.made.tunnel) {
      await step("remove the UAPI socket", () => rm(`${WIREGUARD_SOCKET_DIR}/${this.tunnelInterface}.sock`, { force: true }));
    }

    if (failures.length > 0) throw new VpnnsError(`failed to destroy lab ${this.id}: ${failures.join("; ")}`);
  }
}

/**
 * Creates a lab in the current network namespace, which must be a sandbox (see sandbox.ts), never
 * the machine's own. On failure it removes what it made before throwing.
 */
export async function createLab(options: LabOptions = {}): Promise<Lab> {
  const id = options.id ?? defaultLabId();
  if (!LAB_ID.test(id)) {
    throw new VpnnsError(`invalid lab id ${JSON.stringify(id)}: use 1 to 10 lowercase letters and digits`);
  }
  await assertPrivateNamespaces();
  const lab = new LocalLab(id);
  try {
    await lab.start();
  } catch (error) {
    await lab.destroy().catch((cleanupError: unknown) => warn(errorMessage(cleanupError)));
    throw error;
  }
  return lab;
}
