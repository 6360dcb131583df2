/**
 * A client for the configuration protocol of userspace WireGuard implementations such as
 * wireguard-go: text requests over the Unix socket /var/run/wireguard/IFNAME.sock, described at
 * https://www.wireguard.com/xplatform/. The lab sets private keys this way because `wg setconf IF
 * /dev/stdin` fails under run(): Node gives a child's stdin as a socket pair, and opening
 * /dev/stdin on a socket fails with ENXIO ("No such device or address").
 */
import net from "node:net";

export const WIREGUARD_SOCKET_DIR = "/var/run/wireguard";
const KEY_LENGTH = 32;
const REQUEST_TIMEOUT_MS = 5_000;

/** Converts a base64 WireGuard key, as wg prints it, to the hex form the protocol uses. */
export function keyToHex(base64Key: string): string {
  const bytes = Buffer.from(base64Key, "base64");
  if (bytes.length !== KEY_LENGTH || bytes.toString("base64") !== base64Key) {
    throw new TypeError(`invalid WireGuard key: expected ${KEY_LENGTH} bytes in base64`);
  }
  return bytes.toString("hex");
}

/**
 * Sends a "set=1" request with the given "key=value" lines, such as "private_key=<hex>" and
 * "listen_port=51820", to the interface's socket, and throws if the daemon returns a non-zero errno.
 * Error messages never include the request, because it may contain a private key.
 */
export async function setDevice(interfaceName: string, lines: readonly string[]): Promise<void> {
  const path = `${WIREGUARD_SOCKET_DIR}/${interfaceName}.sock`;
  const reply = await new Promise<string>((resolve, reject) => {
    let received = "";
    const socket = net.createConnection({ path });
    socket.setTimeout(REQUEST_TIMEOUT_MS, () => {
      socket.destroy(new Error(`timed out after ${REQUEST_TIMEOUT_MS} ms`));
    });
    socket.on("connect", () => socket.write(`set=1\n${lines.map((line) => `${line}\n`).join("")}\n`));
    socket.on("data", (chunk) => {
      received += chunk.toString("utf8");
      // The reply ends with an empty line.
      if (received.endsWith("\n\n")) {
        socket.end();
        resolve(received);
      }
    });
    socket.on("error", (error) => reject(new Error(`failed to configure ${interfaceName} through ${path}: ${error.message}`)));
    socket.on("close", () => reject(new Error(`failed to configure ${interfaceName}: ${path} closed without a complete reply`)));
  });

  const errno = /^errno=(-?\d+)$/m.exec(reply)?.[1];
  if (errno !== "0") {
    throw new Error(`failed to configure ${interfaceName}: the daemon returned errno=${errno ?? "(missing)"}`);
  }
}
