/**
 * Bring profiles up and down. `up` runs the planned steps as a transaction: each step registers its
 * undo before it runs, and a failure or a signal unwinds everything made so far. `down` removes what
 * a profile owns by name, so it also cleans what a crashed run left behind.
 */
import { rm, writeFile } from "node:fs/promises";
import type { Profile } from "../profile/types.js";
import { interfaceName, namespaceName } from "./names.js";
import { requireOwnInterfaceForDown } from "./interface-clash.js";
import { netnsEtcDir } from "./paths.js";
import { VpnnsError } from "./errors.js";
import { info, logCommand, warn } from "./log.js";
import { readSettings } from "./settings.js";
import { lockProfile, removeLockFile } from "./lock.js";
import { readState, removeState, writeState, removeRunRegistrations, type ProfileState } from "./state.js";
import { hasIpv6, planUp, type PlannedStep } from "./plan.js";
import { waitForHandshake } from "./handshake.js";
import { checkHealth } from "./health.js";
import { run, formatCommand } from "../tools/exec.js";
import { deleteLink, hasLinkHere, showLink } from "../tools/ip.js";
import { createNamespaceUndo, namespaceExists, endProcessesInside } from "../resources/namespace.js";
import { chooseFirewallBackend } from "../resources/firewall.js";
import { createLink, findUserspaceDaemons, stopUserspaceDaemons, userspaceDaemonsOf, type PlannedCommand } from "../resources/wireguard-link.js";
import { removeDnsFiles, writeDnsFiles } from "../resources/dns.js";
import { createAppMounts, removeAppMounts } from "../resources/app-mounts.js";
import { readPingGroupRange } from "../resources/ping-group-range.js";
import { pathExists } from "./files.js";
import { applyPublishing, stopPublishing } from "../publish/control.js";

export { checkHealth };

export interface UpOptions {
  /** Milliseconds to wait for the first handshake; 0 skips the wait. */
  handshakeTimeoutMs: number;
}

export interface UpResult {
  /** False when the profile was already up and healthy, so nothing changed. */
  changed: boolean;
  state: ProfileState;
}

/** Grace period between SIGTERM and SIGKILL for processes inside a namespace that goes down. */
export const DOWN_GRACE_MS = 5000;

/** Bring a profile up, or leave it as it is when it is already up and healthy. */
export async function up(profile: Profile, options: UpOptions): Promise<UpResult> {
  // An invalid settings file is bad input, so it must fail before the lock file is made.
  readSettings();
  const lock = await lockProfile(profile.name);
  try {
    return await upLocked(profile, options);
  } finally {
    await lock.release();
  }
}

/** `up` for a caller that already holds the profile's lock. */
export async function upLocked(profile: Profile, options: UpOptions): Promise<UpResult> {
  const existing = await readState(profile.name);
  const problems = await checkHealth(existing);
  if (existing && problems.length === 0) {
    await applyPublishing(profile);
    return { changed: false, state: existing };
  }
  if (existing || (await hasLeftovers(profile.name))) {
    const reason = problems.length > 0 ? problems.join("; ") : "leftovers of an earlier run";
    info(`profile ${profile.name} is half-made (${reason}); removing it before rebuilding`);
    await teardown(profile.name, { graceMs: DOWN_GRACE_MS });
  }
  return { changed: true, state: await build(profile, options) };
}

/** Signals that interrupt a setup; the transaction unwinds and vpnns exits with 128 + the signal number. */
const INTERRUPTING_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

async function build(profile: Profile, options: UpOptions): Promise<ProfileState> {
  const settings = readSettings();
  const firewallBackend = await chooseFirewallBackend(settings.firewallBackend);
  const wireguardBackend = settings.wireguardBackend === "auto" ? "kernel" : settings.wireguardBackend;
  const pingGroupRange = await readPingGroupRange();
  const steps = planUp(profile, { wireguardBackend, firewallBackend, pingGroupRange });
  const state: ProfileState = {
    profile: profile.name,
    namespace: namespaceName(profile.name),
    interfaceName: interfaceName(profile.name),
    phase: "building",
    ownerPid: process.pid,
    firewallBackend,
    ipv6: hasIpv6(profile),
    startedAt: new Date().toISOString(),
  };
  await writeState(state);

  const undos: (() => Promise<void>)[] = [() => removeState(profile.name)];
  const signals = new SignalWatch(profile.name);
  try {
    for (const step of steps) {
      signals.throwIfReceived();
      undos.push(undoFor(step, profile.name));
      await runStep(step, profile, state, { settingsBackend: settings.wireguardBackend, options, signals });
    }
    signals.throwIfReceived();
    undos.push(async () => void (await stopPublishing(profile.name)));
    await applyPublishing(profile);
    signals.throwIfReceived();
    const upState: ProfileState = { ...state, phase: "up", upAt: new Date().toISOString() };
    await writeState(upState);
    return upState;
  } catch (error) {
    await unwind(undos);
    // A Ctrl-C also reaches the command that was running, so its failure is reported as the interruption.
    throw signals.error() ?? error;
  } finally {
    signals.stop();
  }
}

/**
 * Catches SIGINT, SIGTERM and SIGHUP during a setup, so the setup can stop between commands and
 * unwind instead of dying half-made. Handlers stay until stop(), so the unwinding is not cut short.
 */
class SignalWatch {
  private received: NodeJS.Signals | undefined;
  private readonly onSignal = (signal: NodeJS.Signals) => {
    this.received ??= signal;
  };

  constructor(private readonly profile: string) {
    for (const signal of INTERRUPTING_SIGNALS) process.on(signal, this.onSignal);
  }

  get interrupted(): boolean {
    return this.received !== undefined;
  }

  error(): VpnnsError | undefined {
    if (this.received === undefined) return undefined;
    return new VpnnsError(`setup of profile ${this.profile} interrupted by ${this.received}; everything it made was removed`, {
      exitCode: 128 + signalNumber(this.received),
    });
  }

  throwIfReceived(): void {
    const error = this.error();
    if (error) throw error;
  }

  stop(): void {
    for (const signal of INTERRUPTING_SIGNALS) process.off(signal, this.onSignal);
  }
}

async function runStep(
  step: PlannedStep,
  profile: Profile,
  state: ProfileState,
  context: { settingsBackend: "auto" | "kernel" | "wireguard-go"; options: UpOptions; signals: SignalWatch },
): Promise<void> {
  switch (step.id) {
    case "link":
      state.wireguardBackend = await createLink(context.settingsBackend, state.interfaceName);
      if (state.wireguardBackend === "wireguard-go") state.wireguardPid = (await findUserspaceDaemons(state.interfaceName))[0];
      await writeState(state);
      return;
    case "dns":
      if (profile.interface.dns.length === 0) {
        warn(`profile ${profile.name} has no DNS servers: apps inside resolve names with no server (only /etc/hosts works) until you add DNS = ... to its [Interface]`);
      }
      await writeDnsFiles(netnsEtcDir(profile.name), profile.name, profile.interface);
      return;
    case "mounts":
      await createAppMounts(profile.name);
      return;
    case "handshake":
      if (context.options.handshakeTimeoutMs > 0) {
        await waitForHandshake({
          profile,
          namespace: state.namespace,
          interfaceName: state.interfaceName,
          backend: state.wireguardBackend ?? "kernel",
          timeoutMs: context.options.handshakeTimeoutMs,
          isInterrupted: () => context.signals.interrupted,
        });
      }
      return;
    default:
      for (const command of step.commands) await runPlanned(command);
  }
}

async function runPlanned(command: PlannedCommand): Promise<void> {
  const { argv, options, secretFile } = command;
  if (secretFile !== undefined) {
    await rm(secretFile.path, { force: true });
    await writeFile(secretFile.path, secretFile.content, { mode: 0o600, flag: "wx" });
    try {
      await run(argv, options);
    } finally {
      await rm(secretFile.path, { force: true });
    }
    return;
  }
  if (argv.includes("-batch") && options.input !== undefined) {
    // Show each batched line as the command it stands for, and run them in one process.
    const prefix = argv.slice(0, argv.indexOf("-batch"));
    for (const line of options.input.trim().split("\n")) logCommand(`${formatCommand(prefix)} ${line}`);
    await run(argv, { ...options, mutates: false });
    return;
  }
  await run(argv, options);
}

function undoFor(step: PlannedStep, profile: string): () => Promise<void> {
  const namespace = namespaceName(profile);
  const link = interfaceName(profile);
  switch (step.id) {
    case "namespace":
      return createNamespaceUndo(namespace);
    case "link":
      return async () => {
        await stopUserspaceDaemons(link);
        if (await showLink(link)) await deleteLink(link);
      };
    case "dns":
      return () => removeDnsFiles(netnsEtcDir(profile));
    case "mounts":
      return () => removeAppMounts(profile);
    default:
      // The kill-switch, the configuration, addresses and routes live in the namespace and go with it.
      return async () => {};
  }
}

/** Run the undo actions in reverse order; each failure is reported and the rest still run. */
async function unwind(undos: (() => Promise<void>)[]): Promise<void> {
  for (const undo of undos.reverse()) {
    try {
      await undo();
    } catch (error) {
      warn(`cleanup step failed: ${(error as Error).message}`);
    }
  }
}

/** Check whether anything a profile owns exists without a state record. */
async function hasLeftovers(profile: string): Promise<boolean> {
  const link = interfaceName(profile);
  // The cheap checks come first: a file, then a pass over /proc, then the host namespace's links.
  return (await namespaceExists(namespaceName(profile))) || (await findUserspaceDaemons(link)).length > 0 || (await hasLinkHere(link));
}

export interface TeardownResult {
  /** Whether anything was there to remove. */
  removed: boolean;
  endedProcesses: number;
}

/**
 * Remove everything a profile owns, found by name: processes inside, the wireguard-go daemon, the
 * namespace (which takes the interface and the kill-switch with it), an interface left in the host
 * namespace, the mounts that keep the apps' mount namespace, the DNS files and the state folder.
 * Safe to repeat.
 */
export async function teardown(profile: string, options: { graceMs: number }): Promise<TeardownResult> {
  const namespace = namespaceName(profile);
  const link = interfaceName(profile);
  const state = await readState(profile);
  // The supervisor goes first, so it does not start a forwarder again while the processes inside end.
  const hadPublishing = await stopPublishing(profile);
  const hadNamespace = await namespaceExists(namespace);
  await removeRunRegistrations(profile);
  const endedProcesses = hadNamespace ? await endProcessesInside(namespace, options.graceMs) : 0;
  const daemons = await userspaceDaemonsOf(link, state?.wireguardPid);
  // The daemons get SIGTERM now and exit while the namespace goes and while the host namespace is
  // checked for a link left there.
  const stopping = daemons.length > 0 ? stopUserspaceDaemons(link, daemons) : undefined;
  // Awaited below: the handler only keeps a failure that comes early from counting as unhandled.
  stopping?.catch(() => {});
  let strayLink = false;
  try {
    if (hadNamespace) await createNamespaceUndo(namespace)();
    strayLink = await hasLinkHere(link);
  } finally {
    await stopping;
  }
  // A wireguard-go link in the host namespace goes with its daemon, so it is looked up again
  // before the delete, which would otherwise fail on a link that is already gone.
  if (strayLink && (daemons.length === 0 || (await showLink(link)))) await deleteLink(link);

  await removeAppMounts(profile);
  const hadDnsFiles = await pathExists(netnsEtcDir(profile));
  if (hadDnsFiles) await removeDnsFiles(netnsEtcDir(profile));
  await removeState(profile);
  const removed = hadPublishing || hadNamespace || daemons.length > 0 || strayLink || state !== undefined || hadDnsFiles;
  return { removed, endedProcesses };
}

/** Take a profile down under its lock, then remove its lock file as well. */
export async function down(profile: string, options: { graceMs?: number } = {}): Promise<TeardownResult> {
  await requireOwnInterfaceForDown(profile);
  const lock = await lockProfile(profile);
  try {
    return await teardown(profile, { graceMs: options.graceMs ?? DOWN_GRACE_MS });
  } finally {
    await removeLockFile(profile);
    await lock.release();
  }
}

function signalNumber(signal: NodeJS.Signals): number {
  return { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 }[signal as "SIGHUP" | "SIGINT" | "SIGTERM"] ?? 0;
}

