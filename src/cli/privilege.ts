/** Root is needed for namespaces and WireGuard: a non-root caller is re-executed through sudo. */
import { VpnnsError } from "../core/errors.js";
import { info } from "../core/log.js";

/** Variables carried through sudo besides the desktop session's, which sudo would otherwise reset. */
const PRESERVED_VARIABLES = ["VPNNS_CONFIG_DIR", "VPNNS_STATE_DIR", "VPNNS_SYSTEMD_DIR"];

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Re-run this vpnns command through sudo, carrying the desktop session's variables and the LC_
 * variables, and exit with its exit code. Returns only when vpnns already runs as root.
 */
export async function ensureRoot(commandName: string): Promise<void> {
  if (isRoot()) return;
  // Root, the usual case, never gets here, so it does not pay for loading execa and the app module.
  const [{ execa }, { DESKTOP_VARIABLES }] = await Promise.all([import("execa"), import("../core/app.js")]);
  const preserved = [...DESKTOP_VARIABLES, ...PRESERVED_VARIABLES, ...Object.keys(process.env).filter((key) => key.startsWith("LC_"))];
  const entry = process.argv[1];
  if (entry === undefined) throw new VpnnsError("cannot re-run vpnns through sudo: the path of its script is unknown");
  info(`'vpnns ${commandName}' needs root, because vpnns manages network namespaces, WireGuard interfaces and files that only root may read: asking sudo (apps still run as you)`);
  const result = await execa("sudo", [`--preserve-env=${preserved.join(",")}`, "--", process.execPath, entry, ...process.argv.slice(2)], {
    stdio: "inherit",
    reject: false,
  });
  if (result.code === "ENOENT") throw new VpnnsError("vpnns needs root and sudo is not installed: run it as root");
  process.exit(result.exitCode ?? 1);
}
