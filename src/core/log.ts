/** Diagnostics on stderr: state-changing commands in wg-quick's "[#] command" form when verbose, warnings always. */

let verbose = false;

export function setVerbose(enabled: boolean): void {
  verbose = enabled;
}

export function isVerbose(): boolean {
  return verbose;
}

/** Print a state-changing command as it runs, when verbose output is on. */
export function logCommand(commandLine: string): void {
  if (verbose) process.stderr.write(`[#] ${commandLine}\n`);
}

export function warn(message: string): void {
  process.stderr.write(`vpnns: warning: ${message}\n`);
}

/** Print a progress or result line for the user on stderr, so stdout stays the app's or the JSON's. */
export function info(message: string): void {
  process.stderr.write(`vpnns: ${message}\n`);
}
