/**
 * The configuration protocol of wireguard-go: text requests over the Unix socket
 * /var/run/wireguard/IFNAME.sock, described at https://www.wireguard.com/xplatform/. vpnns uses it
 * for the queries of the handshake wait and of `vpnns status`, which would otherwise start `wg`
 * once per query.
 */
import net from "node:net";
import { join } from "node:path";
import { VpnnsError } from "../core/errors.js";
import { logCommand } from "../core/log.js";
import type { InterfaceStatus, PeerStatus } from "./wg.js";

export const WIREGUARD_SOCKET_DIR = "/var/run/wireguard";
const KEY_LENGTH = 32;
/** Time limit of a whole request, from connect to the end of the reply. */
const REQUEST_TIMEOUT_MS = 5_000;
/**
 * Maximum reply length in characters. A peer takes a few hundred characters of a "get=1" reply, so
 * this fits thousands of peers, and a socket that sends without end cannot fill the memory of vpnns.
 */
const MAX_REPLY_LENGTH = 1024 * 1024;

/** Convert a base64 WireGuard key, as wg prints it, to the hex form the protocol uses. */
export function keyToHex(base64Key: string): string {
  const bytes = Buffer.from(base64Key, "base64");
  if (bytes.length !== KEY_LENGTH || bytes.toString("base64") !== base64Key) {
    throw new TypeError(`invalid WireGuard key: expected ${KEY_LENGTH} bytes in base64`);
  }
  return bytes.toString("hex");
}

export function socketPath(interfaceName: string): string {
  return join(WIREGUARD_SOCKET_DIR, `${interfaceName}.sock`);
}

/**
 * Send one request (its lines without the final empty line) and return the reply without its
 * final empty line. Fails after REQUEST_TIMEOUT_MS, even while data keeps arriving, and when the
 * reply exceeds MAX_REPLY_LENGTH characters. Error messages never include the request, because it may contain
 * a key.
 */
export function request(interfaceName: string, lines: readonly string[]): Promise<string> {
  const path = socketPath(interfaceName);
  return new Promise<string>((resolve, reject) => {
    let received = "";
    const socket = net.createConnection({ path });
    // A deadline for the whole request: an idle timeout would never fire on a socket that sends
    // a byte now and then without ever ending its reply.
    const timer = setTimeout(() => socket.destroy(new Error(`timed out after ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS);
    socket.on("connect", () => socket.write(`${lines.map((line) => `${line}\n`).join("")}\n`));
    socket.on("data", (chunk) => {
      received += chunk.toString("utf8");
      if (received.length > MAX_REPLY_LENGTH) {
        socket.destroy(new Error(`reply exceeds ${MAX_REPLY_LENGTH} characters`));
        return;
      }
      // The reply ends with an empty line.
      if (received.endsWith("\n\n")) {
        clearTimeout(timer);
        socket.destroy();
        resolve(received.slice(0, -1));
      }
    });
    socket.on("error", (error) => reject(new Error(`${path}: ${error.message}`)));
    socket.on("close", () => {
      clearTimeout(timer);
      reject(new Error(`${path} closed without a complete reply`));
    });
  });
}

/** Send a "set=1" request and throw unless the daemon returns errno=0. */
export async function setDevice(interfaceName: string, lines: readonly string[]): Promise<void> {
  const reply = await request(interfaceName, ["set=1", ...lines]);
  const errno = /^errno=(-?\d+)$/m.exec(reply)?.[1];
  if (errno !== "0") throw new Error(`the daemon returned errno=${errno ?? "(missing)"}`);
}

/** Set a peer's persistent keepalive through the socket, as `wg set IF peer KEY persistent-keepalive N|off` does. */
export async function setPeerKeepalive(interfaceName: string, publicKey: string, seconds: number): Promise<void> {
  const value = seconds === 0 ? "off" : String(seconds);
  logCommand(`uapi ${socketPath(interfaceName)}: set peer ${publicKey} persistent-keepalive ${value}`);
  try {
    await setDevice(interfaceName, [`public_key=${keyToHex(publicKey)}`, "update_only=true", `persistent_keepalive_interval=${seconds}`]);
  } catch (error) {
    throw new VpnnsError(`failed to set keepalive of peer ${publicKey} on ${interfaceName}: ${(error as Error).message}`, { cause: error });
  }
}

/** Check whether any peer of the interface has completed a handshake, from a "get=1" request. */
export async function hasHandshake(interfaceName: string): Promise<boolean> {
  let reply: string;
  try {
    reply = await request(interfaceName, ["get=1"]);
  } catch (error) {
    throw new VpnnsError(`failed to read WireGuard interface ${interfaceName}: ${(error as Error).message}`, { cause: error });
  }
  return /^last_handshake_time_sec=[1-9]/m.test(reply);
}

/**
 * Read each peer's endpoint, latest handshake and transfer, the figures that `wg show IF
 * latest-handshakes`, `endpoints` and `transfer` print, with one "get=1" request. Returns
 * undefined when the request fails, as showInterface does when wg fails.
 */
export async function readPeers(interfaceName: string): Promise<InterfaceStatus | undefined> {
  try {
    return parsePeers(await request(interfaceName, ["get=1"]));
  } catch {
    return undefined;
  }
}

/**
 * Parse the peers of a "get=1" reply. The reply also contains the private and preshared keys,
 * which are skipped here. Returns undefined unless the reply ends with errno=0.
 */
export function parsePeers(reply: string): InterfaceStatus | undefined {
  const peers: PeerStatus[] = [];
  let peer: PeerStatus | undefined;
  let errno: string | undefined;
  for (const line of reply.split("\n")) {
    const separator = line.indexOf("=");
    const key = line.slice(0, separator);
    const value = line.slice(separator + 1);
    if (key === "public_key") {
      peer = { publicKey: Buffer.from(value, "hex").toString("base64"), endpoint: undefined, latestHandshake: 0, rxBytes: 0, txBytes: 0 };
      peers.push(peer);
    } else if (key === "errno") {
      errno = value;
    } else if (peer !== undefined) {
      if (key === "endpoint") peer.endpoint = value;
      else if (key === "last_handshake_time_sec") peer.latestHandshake = Number(value);
      else if (key === "rx_bytes") peer.rxBytes = Number(value);
      else if (key === "tx_bytes") peer.txBytes = Number(value);
    }
  }
  return errno === "0" ? { peers } : undefined;
}
