/** Locations of profiles, settings and runtime state. */
import { join } from "node:path";
import { namespaceName } from "./names.js";

/** Profiles and settings: /etc/vpnns, or VPNNS_CONFIG_DIR. */
export function configDir(): string {
  return process.env.VPNNS_CONFIG_DIR || "/etc/vpnns";
}

export function profilesDir(): string {
  return join(configDir(), "profiles");
}

export function profileFile(profile: string): string {
  return join(profilesDir(), `${profile}.json`);
}

/** Runtime state: /run/vpnns, or VPNNS_STATE_DIR. Lost at reboot, like the namespaces it describes. */
export function stateDir(): string {
  return process.env.VPNNS_STATE_DIR || "/run/vpnns";
}

export function profileStateDir(profile: string): string {
  return join(stateDir(), profile);
}

/** Return the folder of per-namespace files that `ip netns exec` bind-mounts over /etc. */
export function netnsEtcDir(profile: string): string {
  return join("/etc/netns", namespaceName(profile));
}

/** Return the bind-mount that names a profile's network namespace. */
export function netnsRunFile(profile: string): string {
  return join("/run/netns", namespaceName(profile));
}
