/**
 * The lab's use of the wireguard-go configuration protocol (src/tools/uapi.ts). The lab sets
 * private keys this way because `wg setconf IF /dev/stdin` fails under run(): Node gives a child's
 * stdin as a socket pair, and opening /dev/stdin on a socket fails with ENXIO ("No such device or
 * address").
 */
import { setDevice as setDeviceOverSocket } from "../tools/uapi.js";

export { keyToHex, WIREGUARD_SOCKET_DIR } from "../tools/uapi.js";

/**
 * Sends a "set=1" request with the given "key=value" lines, such as "private_key=<hex>" and
 * "listen_port=51820", to the interface's socket, and throws if the daemon returns a non-zero errno.
 * Error messages never include the request, because it may contain a private key.
 */
export async function setDevice(interfaceName: string, lines: readonly string[]): Promise<void> {
  try {
    await setDeviceOverSocket(interfaceName, lines);
  } catch (error) {
    throw new Error(`failed to configure ${interfaceName}: ${(error as Error).message}`);
  }
}
