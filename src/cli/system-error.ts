/**
 * Messages for file system errors that reach the command line unhandled, such as a config folder
 * path that names a file. They replace a stack trace with the path, the reason and a next step.
 */
import { describeErrno } from "../core/errno.js";
import { EXIT_FAILURE, EXIT_USAGE, VpnnsError } from "../core/errors.js";

/** Codes that mean a path names the wrong kind of file, which a setting can fix. */
const WRONG_TYPE_CODES = new Set(["ENOTDIR", "EEXIST", "EISDIR"]);

const FOLDERS_HINT =
  "check that VPNNS_CONFIG_DIR and VPNNS_STATE_DIR (by default /etc/vpnns and /run/vpnns) name folders that root can write";

/**
 * Convert a Node.js file system error (with errno `code`, `syscall` and `path`) into a VpnnsError,
 * or return undefined for any other error. A path of the wrong type is bad configuration, so it
 * exits with code 2, and other errors with code 1.
 */
export function describeSystemError(error: unknown): VpnnsError | undefined {
  if (!(error instanceof Error)) return undefined;
  const { code, syscall, path } = error as NodeJS.ErrnoException;
  if (typeof code !== "string" || typeof syscall !== "string" || typeof path !== "string") return undefined;
  const exitCode = WRONG_TYPE_CODES.has(code) ? EXIT_USAGE : EXIT_FAILURE;
  return new VpnnsError(`failed to ${syscall} ${path}: ${describeErrno(error)}; ${FOLDERS_HINT}`, { exitCode, cause: error });
}
