/** Locations of profiles, settings and runtime state. */
import { isAbsolute, join } from "node:path";
import { UsageError } from "./errors.js";
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

/**
 * Reject a relative VPNNS_CONFIG_DIR or VPNNS_STATE_DIR. Such a path depends on the working
 * folder, so a profile imported from one folder would not be found from another.
 */
export function checkFolderVariables(env: NodeJS.ProcessEnv = process.env): void {
  for (const name of ["VPNNS_CONFIG_DIR", "VPNNS_STATE_DIR"]) {
    const value = env[name];
    if (value && !isAbsolute(value)) {
      throw new UsageError(`invalid ${name} ${JSON.stringify(value)}: give an absolute path, such as /etc/vpnns or /run/vpnns, or unset it`);
    }
  }
}
