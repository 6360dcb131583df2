/** Waiting for the first WireGuard handshake, which proves that the endpoint is reachable and accepts the keys. */
import type { Profile } from "../profile/types.js";
import { VpnnsError } from "./errors.js";
import { readLatestHandshakes, setPersistentKeepalive } from "../tools/wg.js";
import { hasHandshake, setPeerKeepalive } from "../tools/uapi.js";
import { sleep } from "../resources/namespace.js";
import type { WireGuardBackend } from "../resources/wireguard-link.js";

/** Keepalive interval set for a moment on peers without one, because setting it sends a packet at once. */
const PROVOKING_KEEPALIVE_SECONDS = 25;

/**
 * Wait until at least one peer with an endpoint has completed a handshake. Setting a keepalive
 * interval makes WireGuard send a keepalive at once, which starts a handshake. So peers without
 * a keepalive get one until the handshake, and then the profile's own setting is restored.
 */
export async function waitForHandshake(options: {
  profile: Profile;
  namespace: string;
  interfaceName: string;
  /** Backend of the interface, which decides the queries: wireguard-go's socket, or `wg` inside the namespace for the kernel. */
  backend: WireGuardBackend;
  timeoutMs: number;
  /** Polled between checks: the wait ends early, without an error, once it returns true. */
  isInterrupted: () => boolean;
}): Promise<void> {
  const { profile, namespace, interfaceName, timeoutMs } = options;
  const peers = profile.peers.filter((peer) => peer.endpoint !== undefined);
  if (peers.length === 0) return;
  const provoked = peers.filter((peer) => peer.persistentKeepalive === undefined);
  // A query over wireguard-go's socket takes well under a millisecond, and `wg` in the namespace
  // takes a process start. So the userspace wait checks often, and the kernel wait less often.
  const userspace = options.backend === "wireguard-go";
  const setKeepalive = (publicKey: string, seconds: number) =>
    userspace ? setPeerKeepalive(interfaceName, publicKey, seconds) : setPersistentKeepalive({ namespace, interfaceName, publicKey, seconds });
  const handshakeDone = async () =>
    userspace ? hasHandshake(interfaceName) : [...((await readLatestHandshakes(namespace, interfaceName))?.values() ?? [])].some((seconds) => seconds > 0);
  for (const peer of provoked) await setKeepalive(peer.publicKey, PROVOKING_KEEPALIVE_SECONDS);

  const deadline = Date.now() + timeoutMs;
  let delay = userspace ? 1 : 10;
  const maxDelay = userspace ? 20 : 100;
  for (;;) {
    if (await handshakeDone()) break;
    if (options.isInterrupted()) return;
    if (Date.now() >= deadline) {
      const endpoints = peers.map((peer) => `${peer.endpoint} (peer ${peer.publicKey})`).join(", ");
      throw new VpnnsError(
        `no WireGuard handshake with ${endpoints} within ${timeoutMs / 1000} s: check that this machine reaches the endpoint over UDP, ` +
          `that the profile's keys are current at the provider, and that no firewall on the way drops the port; ` +
          `--handshake-timeout sets a longer wait and --no-wait skips it`,
      );
    }
    await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
    delay = Math.min(delay * 2, maxDelay);
  }

  for (const peer of provoked) await setKeepalive(peer.publicKey, 0);
}
