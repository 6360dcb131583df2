/**
 * Checks that keep two profiles from sharing one WireGuard interface name. Import rejects such a
 * name, but profile files copied by hand, or state left by an older vpnns, can still clash.
 */
import { UsageError } from "./errors.js";
import { findInterfaceClash, interfaceName } from "./names.js";
import { profilesWithState, readState } from "./state.js";

/**
 * Reject using `profile` while one of `storedProfiles`, or a profile with runtime state, has the
 * same interface name. Loading a profile runs this check, so no command brings such a profile up
 * or writes a unit for it.
 */
export async function requireOwnInterface(profile: string, storedProfiles: readonly string[]): Promise<void> {
  const other = findInterfaceClash(profile, [...storedProfiles, ...(await profilesWithState())]);
  if (other === undefined) return;
  throw new UsageError(
    `invalid profile name "${profile}": its interface name ${interfaceName(profile)} is also that of profile ${other}; ` +
      `import one of them again under another name with --name, then remove the old one`,
  );
}

/**
 * Reject taking down `profile`, which is not up, while another profile with the same interface
 * name is up, because the teardown finds the interface and its wireguard-go daemon by name.
 */
export async function requireOwnInterfaceForDown(profile: string): Promise<void> {
  if ((await readState(profile)) !== undefined) return;
  const other = findInterfaceClash(profile, await profilesWithState());
  if (other === undefined) return;
  throw new UsageError(
    `profile ${profile} is not up, and its interface name ${interfaceName(profile)} belongs to profile ${other}, which is up; ` +
      `nothing was removed. To take that one down, run: vpnns down ${other}`,
  );
}
