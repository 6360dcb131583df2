/**
 * Starting an app inside a profile with the checks that `vpnns run` adds around runApp: desktop
 * session sockets, a separate instance for known single-instance apps, and the hand-off warning.
 */
import { appEnvironment, findProgram, runApp } from "../core/app.js";
import { info, isVerbose, warn } from "../core/log.js";
import type { TargetUser } from "../core/user.js";
import { checkDesktopSession } from "./session.js";
import { identifyProgram, prepareSeparateInstance, warnIfHandedOff } from "./single-instance.js";

/** Run the command in the profile's namespace as the user and return its exit code, as runApp does. */
export async function launchApp(options: {
  profile: string;
  namespace: string;
  user: TargetUser;
  command: string[];
  /** Passed to runApp: runs once the app's process is in the namespace. */
  onInside?: () => Promise<void>;
}): Promise<number> {
  const session = checkDesktopSession(process.env, options.profile);
  for (const warning of session.warnings) warn(warning);
  if (isVerbose()) for (const change of session.changes) info(`using ${change}`);

  const program = findProgram(options.command[0] ?? "", appEnvironment(options.user, session.env).PATH ?? "");
  // runApp reports a missing program with exit code 127.
  if (program === undefined) {
    return runApp({ namespace: options.namespace, user: options.user, command: options.command, env: session.env, onInside: options.onInside });
  }
  const instance = prepareSeparateInstance({ ...options, program, env: session.env });
  // With isolation options added, the app cannot hand the launch to an instance outside.
  const identity = instance.added.length === 0 ? identifyProgram(options.command, program) : undefined;

  const started = Date.now();
  const exitCode = await runApp({ namespace: options.namespace, user: options.user, command: instance.command, env: session.env, onInside: options.onInside });
  await warnIfHandedOff({ ...options, identity, exitCode, elapsedMs: Date.now() - started });
  return exitCode;
}
