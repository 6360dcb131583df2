/** `vpnns up`, `down`, `status` and `run`. */
import { Option, type Command } from "commander";
import { UsageError } from "../core/errors.js";
import { readSettings } from "../core/settings.js";
import { info } from "../core/log.js";
import type { TeardownResult } from "../core/launcher.js";
import type { CleanupResult } from "../core/cleanup.js";
import { addUpOptions, addVerboseOption, handshakeTimeoutMs, parseSeconds, type UpFlags } from "./options.js";

export function registerLifecycleCommands(program: Command): void {
  addUpOptions(addVerboseOption(program.command("up")))
    .description("build the profile's namespace, tunnel and kill-switch (nothing changes when it is already up)")
    .argument("<profile>", "profile name")
    .addOption(
      new Option("--retry-for <seconds>", "on no handshake or an endpoint name that does not resolve, retry for this many seconds, then fail")
        .argParser(parseSeconds),
    )
    .action(async (name: string, flags: UpFlags & { retryFor?: number }) => {
      const [{ loadProfile }, { up }, { writeState }] = await Promise.all([
        import("../profile/store.js"),
        import("../core/launcher.js"),
        import("../core/state.js"),
      ]);
      const profile = await loadProfile(name);
      const options = { handshakeTimeoutMs: handshakeTimeoutMs(flags) };
      const result =
        flags.retryFor === undefined
          ? await up(profile, options)
          : await (await import("../core/retry.js")).upWithRetry(profile, { ...options, retryForMs: flags.retryFor });
      if (result.state.autoDown) await writeState({ ...result.state, autoDown: false });
      if (!result.changed) {
        info(`profile ${name} is already up; nothing changed`);
        return;
      }
      info(`profile ${name} is up: namespace ${result.state.namespace}, interface ${result.state.interfaceName} (${result.state.wireguardBackend})`);
    });

  addVerboseOption(program.command("down"))
    .description("end the processes inside a profile and remove its namespace, interface, firewall, DNS files and state")
    .argument("[profile]", "profile name")
    .option("--all", "take every profile down")
    .action(async (name: string | undefined, options: { all?: boolean }) => {
      if (Boolean(options.all) === (name !== undefined)) throw new UsageError("give either a profile name or --all, as in: vpnns down work");
      if (options.all) {
        const { cleanup } = await import("../core/cleanup.js");
        const result = await cleanup();
        reportCleanup(result);
        if (result.profiles.every((entry) => !entry.result.removed) && result.interfaces.length === 0) info("no profile is up; nothing to remove");
        return;
      }
      const [{ validateProfileName }, { down }] = await Promise.all([import("../core/names.js"), import("../core/launcher.js")]);
      validateProfileName(name!);
      reportDown(name!, await down(name!));
    });

  addVerboseOption(program.command("cleanup"))
    .description("take every profile down and remove what crashed runs left: vpnns-* namespaces, vns-* interfaces, wireguard-go daemons, DNS files and state")
    .action(async () => {
      const { cleanup } = await import("../core/cleanup.js");
      const result = await cleanup();
      reportCleanup(result);
      if (result.profiles.every((entry) => !entry.result.removed) && result.interfaces.length === 0) info("nothing to clean up");
    });

  addVerboseOption(program.command("status"))
    .description("show whether profiles are up, their tunnel and the processes inside")
    .argument("[profile]", "profile name (default: every profile)")
    .option("--json", "print JSON")
    .action(async (name: string | undefined, options: { json?: boolean }) => {
      const [{ knownProfiles, reportProfiles }, { formatReport }] = await Promise.all([import("../core/status.js"), import("./format.js")]);
      if (name !== undefined) await requireKnownProfile(name);
      const names = name !== undefined ? [name] : await knownProfiles();
      const reports = await reportProfiles(names);
      if (options.json) console.log(JSON.stringify(name !== undefined ? reports[0] : reports, null, 2));
      else if (reports.length === 0) info("no profiles yet; import one with: vpnns profile import FILE");
      else console.log(reports.map(formatReport).join("\n\n"));
    });

  addUpOptions(addVerboseOption(program.command("run")))
    .description("run a command inside a profile as the invoking user, and exit with its exit code")
    .option("-p, --profile <name>", "profile to run in (default: the app's profile from 'vpnns app set', else the default profile)")
    .option("--keep", "leave the profile up when the command ends")
    .option("--user <name>", "run as this user instead of the invoking one")
    .option("--as-root", "run as root")
    .argument("<command...>", "the command and its arguments (put -- before a command whose arguments start with -)")
    .passThroughOptions()
    .action(async (command: string[], flags: UpFlags & { profile?: string; keep?: boolean; user?: string; asRoot?: boolean }) => {
      process.exitCode = await runInProfile(command, flags);
    });
}

/** Reject a name that is neither a stored profile nor one with runtime state (exit code 2). */
async function requireKnownProfile(name: string): Promise<void> {
  const [{ validateProfileName }, { knownProfiles }] = await Promise.all([import("../core/names.js"), import("../core/status.js")]);
  validateProfileName(name);
  const known = await knownProfiles();
  if (known.includes(name)) return;
  const choices = known.length > 0 ? `known profiles: ${known.join(", ")}` : "no profiles are stored yet";
  throw new UsageError(`profile ${name} not found; ${choices}`);
}

function reportDown(profile: string, result: TeardownResult): void {
  if (!result.removed) info(`profile ${profile} is not up; nothing to remove`);
  else if (result.endedProcesses > 0) info(`profile ${profile} is down (ended ${countProcesses(result.endedProcesses)} inside)`);
  else info(`profile ${profile} is down`);
}

function reportCleanup(result: CleanupResult): void {
  for (const { profile, result: teardownResult } of result.profiles) reportDown(profile, teardownResult);
  for (const link of result.interfaces) info(`removed stray interface ${link}`);
}

async function runInProfile(command: string[], flags: UpFlags & { profile?: string; keep?: boolean; user?: string; asRoot?: boolean }): Promise<number> {
  const [{ appOfCommand, chooseProfile }, { loadProfile }, { resolveTargetUser }, { lockProfile }, { upLocked }, { isRunRegistered, registerRun, unregisterRun, writeState }, { launchApp }] =
    await Promise.all([
      import("../apps/assignments.js"),
      import("../profile/store.js"),
      import("../core/user.js"),
      import("../core/lock.js"),
      import("../core/launcher.js"),
      import("../core/state.js"),
      import("../apps/launch.js"),
    ]);
  const { profile: name } = await chooseProfile(flags.profile, appOfCommand(command));
  const profile = await loadProfile(name);
  const user = await resolveTargetUser({ user: flags.user, asRoot: flags.asRoot });
  // An invalid settings file is bad input, so it must fail before the lock file is made.
  readSettings();

  // The lock is held until the app is inside the namespace, so that a `vpnns down` which starts
  // meanwhile finds the app and ends it, instead of removing the namespace under its start.
  const lock = await lockProfile(name);
  let locked = true;
  const release = async () => {
    if (!locked) return;
    locked = false;
    await lock.release();
  };
  let namespace: string;
  try {
    const result = await upLocked(profile, { handshakeTimeoutMs: handshakeTimeoutMs(flags) });
    const autoDown = flags.keep ? false : result.changed || result.state.autoDown === true;
    if (autoDown !== (result.state.autoDown === true)) await writeState({ ...result.state, autoDown });
    namespace = result.state.namespace;
    await registerRun(name);
  } catch (error) {
    await release();
    throw error;
  }

  // NOTE: no handler catches SIGINT, SIGTERM or SIGHUP between the end of the setup and launchApp,
  // nor between the app's exit and the cleanup handlers below. A signal there ends run at once and
  // leaves up a profile that run brought up.
  let exitCode: number | undefined;
  try {
    exitCode = await launchApp({ profile: name, namespace, user, command, onInside: release });
    return exitCode;
  } finally {
    await release();
    // A teardown (`vpnns down`, cleanup or a rebuild) removes the registration before it ends the app.
    if (exitCode !== undefined && exitCode !== 0 && !(await isRunRegistered(name))) {
      info(`profile ${name} was taken down while the command ran, which ended it; once the down has finished, start it again with: vpnns run --profile ${name}`);
    }
    // A second Ctrl-C while the profile goes down must not leave it half-removed.
    const ignore = () => {};
    for (const signal of CLEANUP_SIGNALS) process.on(signal, ignore);
    try {
      await unregisterRun(name);
      await takeDownIfIdle(name);
    } finally {
      for (const signal of CLEANUP_SIGNALS) process.off(signal, ignore);
    }
  }
}

const CLEANUP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** Take down a profile that `run` brought up, once no process and no other run is left in it. */
async function takeDownIfIdle(name: string): Promise<void> {
  const [{ lockProfile, removeLockFile }, { otherLiveRuns, readState }, { processesInside }, { DOWN_GRACE_MS, teardown }, { findForwarders }] = await Promise.all([
    import("../core/lock.js"),
    import("../core/state.js"),
    import("../resources/namespace.js"),
    import("../core/launcher.js"),
    import("../publish/control.js"),
  ]);
  // Only a run that brings the profile up turns autoDown on, and that run checks again when it
  // ends. So a record without autoDown, read before the lock, lets this run skip the lock.
  if (!(await readState(name))?.autoDown) return;
  const lock = await lockProfile(name);
  let removeLock = false;
  try {
    const state = await readState(name);
    if (!state?.autoDown) return;
    if ((await otherLiveRuns(name)).length > 0) return;
    const forwarders = await findForwarders(name);
    const remaining = (await processesInside(state.namespace)).filter((entry) => !forwarders.includes(entry.pid));
    if (remaining.length > 0) {
      info(`leaving profile ${name} up: ${countProcesses(remaining.length)} still inside; 'vpnns down ${name}' ends them`);
      return;
    }
    await teardown(name, { graceMs: DOWN_GRACE_MS });
    removeLock = true;
  } finally {
    if (removeLock) await removeLockFile(name);
    await lock.release();
  }
}

function countProcesses(count: number): string {
  return count === 1 ? "1 process" : `${count} processes`;
}
