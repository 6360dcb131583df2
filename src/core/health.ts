/**
 * The health of profiles that should be up: the state record, the namespace, the interface up
 * inside it, the wireguard-go daemon (when used) and the kill-switch. checkHealth checks one
 * profile with a process per check. checkHealthOfEach checks many profiles with a few batched
 * processes, for `vpnns status`, and reports the same problems in the same words.
 */
import { readFileSync } from "node:fs";
import { isProcessAlive, type ProfileState } from "./state.js";
import { interfaceName, namespaceName } from "./names.js";
import { showLink } from "../tools/ip.js";
import { runInNamespaces, type NamespaceCommand, type NamespaceCommandResult } from "../tools/netns-batch.js";
import { namespaceExists } from "../resources/namespace.js";
import { hasKillSwitch, isKillSwitchInOutputs, killSwitchQueries } from "../resources/firewall.js";
import { userspaceDaemonsOf } from "../resources/wireguard-link.js";

const NO_STATE_RECORD = "no state record";

/** Results of the checks inside a namespace that exists. */
interface Findings {
  /** Whether the WireGuard interface is up, or undefined when the namespace has no link of that name. */
  linkUp: boolean | undefined;
  /** PIDs of the wireguard-go daemon, or undefined for kernel WireGuard. */
  daemons: number[] | undefined;
  killSwitch: boolean;
}

/** Describe what is wrong with a profile that should be up; an empty list means healthy. */
export async function checkHealth(state: ProfileState | undefined): Promise<string[]> {
  if (!state) return [NO_STATE_RECORD];
  const early = await problemsBeforeChecks(state);
  if (early !== undefined) return early;
  // The checks are independent, so their commands run at once.
  const [link, daemons, killSwitch] = await Promise.all([
    showLink(state.interfaceName, state.namespace),
    daemonsOf(state),
    state.firewallBackend ? hasKillSwitch(state.namespace, state.firewallBackend) : true,
  ]);
  // ip also finds a link by an alternative name, but the kill-switch matches only the name, so a
  // link found under another name counts as missing, as in the batched check.
  const linkUp = link !== undefined && link.ifname === state.interfaceName ? link.flags.includes("UP") : undefined;
  return describeFindings(state, { linkUp, daemons, killSwitch });
}

export interface BatchedHealth {
  /** The problems of each state, as checkHealth reports them, in the order of the states. */
  problems: string[][];
  /** The results of the extra commands, in their order. */
  extra: NamespaceCommandResult[];
}

/**
 * Check the health of each state, and run the extra commands, which must only read, in the same
 * batches. Each state with a namespace adds two batch lines, or three with iptables, where
 * checkHealth starts two or three processes: see tools/netns-batch.ts.
 */
export async function checkHealthOfEach(states: readonly (ProfileState | undefined)[], extra: readonly NamespaceCommand[] = []): Promise<BatchedHealth> {
  const early = await Promise.all(states.map((state) => (state ? problemsBeforeChecks(state) : [NO_STATE_RECORD])));
  const checked = states.flatMap((state, index) => (state !== undefined && early[index] === undefined ? [{ state, index }] : []));
  const commands: NamespaceCommand[] = [];
  /** The position of each checked state's first command in `commands`. */
  const firstCommands: number[] = [];
  for (const { state } of checked) {
    firstCommands.push(commands.length);
    commands.push({ namespace: state.namespace, argv: linkQuery(state.interfaceName) });
    for (const argv of killSwitchQueriesOf(state)) commands.push({ namespace: state.namespace, argv });
  }
  const extraStart = commands.length;
  commands.push(...extra);
  const running = commands.length > 0 ? runInNamespaces(commands, { intent: "check the links and kill-switches of the profiles" }) : Promise.resolve([]);
  // Awaited below: the handler only keeps a failure from counting as unhandled while /proc is read.
  running.catch(() => {});
  // The daemons are found in /proc, without a process, while the batches run.
  const daemons = await Promise.all(checked.map(({ state }) => daemonsOf(state)));
  const results = await running;

  const problems = early.map((problemsFound) => problemsFound ?? []);
  checked.forEach(({ state, index }, position) => {
    const first = firstCommands[position]!;
    const killSwitchResults = results.slice(first + 1, first + 1 + killSwitchQueriesOf(state).length);
    problems[index] = describeFindings(state, {
      linkUp: isLinkUp(results[first]!),
      daemons: daemons[position],
      killSwitch: state.firewallBackend
        ? isKillSwitchInOutputs(
            state.firewallBackend,
            killSwitchResults.map((result) => (result.failed ? undefined : result.stdout)),
          )
        : true,
    });
  });
  return { problems, extra: results.slice(extraStart) };
}

/**
 * Return the problems found before anything runs in the namespace: a record that names another
 * namespace or interface, a setup that did not finish, a record without known backends, or no
 * namespace. Returns undefined when the
 * namespace needs checking.
 */
async function problemsBeforeChecks(state: ProfileState): Promise<string[] | undefined> {
  if (!hasExpectedNames(state)) {
    const found = `namespace ${JSON.stringify(state.namespace)} and interface ${JSON.stringify(state.interfaceName)}`;
    return [`the state record names ${found} instead of ${namespaceName(state.profile)} and ${interfaceName(state.profile)}: take the profile down with: vpnns down ${state.profile}`];
  }
  if (state.phase !== "up") {
    return [isProcessAlive(state.ownerPid) ? `setup by process ${state.ownerPid} did not finish` : `setup by process ${state.ownerPid} crashed`];
  }
  // Without a known backend, the kill-switch or the daemon would go unchecked.
  const backendProblems = [
    describeBackend(state, "firewallBackend", ["nft", "iptables"]),
    describeBackend(state, "wireguardBackend", ["kernel", "wireguard-go"]),
  ].filter((problem) => problem !== undefined);
  if (backendProblems.length > 0) return backendProblems;
  if (!(await namespaceExists(state.namespace))) return [`namespace ${state.namespace} is missing`];
  return undefined;
}

/**
 * Check that the record names the namespace and interface that vpnns derives from its profile
 * name, the only ones it checks and removes. A record edited by hand may name others.
 */
export function hasExpectedNames(state: ProfileState): boolean {
  return state.namespace === namespaceName(state.profile) && state.interfaceName === interfaceName(state.profile);
}

/** Describe a backend field of a record that is up when it is not one of the known values. */
function describeBackend(state: ProfileState, field: "firewallBackend" | "wireguardBackend", known: readonly string[]): string | undefined {
  const value: unknown = state[field];
  if (typeof value === "string" && known.includes(value)) return undefined;
  const found = value === undefined ? "no" : JSON.stringify(value);
  const expected = known.map((name) => JSON.stringify(name)).join(" or ");
  return `the state record has ${found} ${field}, expected ${expected}: take the profile down with: vpnns down ${state.profile}`;
}

function describeFindings(state: ProfileState, findings: Findings): string[] {
  const problems: string[] = [];
  if (findings.linkUp === undefined) problems.push(`interface ${state.interfaceName} is missing from ${state.namespace}`);
  else if (!findings.linkUp) problems.push(`interface ${state.interfaceName} is down`);
  if (findings.daemons !== undefined && findings.daemons.length === 0) {
    problems.push(`the wireguard-go process of ${state.interfaceName} is not running`);
  }
  for (const pid of findings.daemons?.filter(isStopped) ?? []) {
    problems.push(`the wireguard-go process ${pid} of ${state.interfaceName} is stopped: resume it with: kill -CONT ${pid}`);
  }
  if (!findings.killSwitch) problems.push(`the kill-switch in ${state.namespace} is missing`);
  return problems;
}

/**
 * Check whether a process is stopped by a signal (state T in /proc/PID/stat), so that it forwards
 * no packets although it exists. Returns false for a process that has ended. A tracing stop (state
 * t) is not counted, because a process under strace enters one at each system call and leaves it
 * again at once.
 */
function isStopped(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  // The state follows the command name, which is in parentheses and may itself contain ")".
  const processState = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return processState === "T";
}

function daemonsOf(state: ProfileState): Promise<number[] | undefined> {
  return state.wireguardBackend === "wireguard-go" ? userspaceDaemonsOf(state.interfaceName, state.wireguardPid) : Promise.resolve(undefined);
}

function killSwitchQueriesOf(state: ProfileState): string[][] {
  return state.firewallBackend ? killSwitchQueries(state.firewallBackend) : [];
}

/**
 * Return the command that prints the link's flags inside the namespace, from the sysfs that `ip
 * netns exec` mounts for the namespace. In a batch over 50 namespaces (iproute2 6.1.0, 2-core VM
 * under load), cat took 2.4 to 2.6 ms a namespace and `ip -j -d link show` 2.6 to 4.0 ms. Unlike
 * ip, it finds a link only by its name, not by an alternative name, and the name is what the
 * kill-switch matches.
 */
function linkQuery(interfaceName: string): string[] {
  return ["cat", `/sys/class/net/${interfaceName}/flags`];
}

/** IFF_UP in the flags of a link (include/uapi/linux/if.h). */
const IFF_UP = 0x1;

/** Return whether the link is up from the output of linkQuery, such as "0x1091", or undefined when there is no such link. */
function isLinkUp(result: NamespaceCommandResult): boolean | undefined {
  if (result.failed) return undefined;
  return (Number(result.stdout.trim()) & IFF_UP) !== 0;
}
