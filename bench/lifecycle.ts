/**
 * Measurements of single commands: cold `up` and `down` against the baseline scripts, `run` on a
 * profile that is up against its floor, and the memory of a `run` that waits for its app.
 */
import { readdir, readFile, readlink, stat } from "node:fs/promises";
import { runChecked, sleep, type CommandResult } from "./commands.js";
import { BASELINE_DOWN, BASELINE_UP, withRetries, type Context } from "./setup.js";

/** The profile of the single-profile measurements, and its WireGuard interface. */
export const MAIN_PROFILE = "bench";
export const MAIN_INTERFACE = "vns-bench";
/** Names used by bench/baseline-up.sh for the cold-up floor. */
export const BASELINE_NAMESPACE = "bench-base";
export const BASELINE_INTERFACE = "bnbase";

/** Runs `node -e 0`, the start and exit of a bare Node.js process; returns its milliseconds. */
export async function timeNodeStart(env?: NodeJS.ProcessEnv): Promise<number> {
  return (await runChecked([process.execPath, "-e", "0"], env === undefined ? {} : { env })).elapsedMs;
}

/**
 * Environment variables that make every Node.js start slower: Node.js reads the certificate file
 * that NODE_EXTRA_CA_CERTS names at each start, and NODE_OPTIONS can preload modules.
 */
export const START_VARIABLES = ["NODE_EXTRA_CA_CERTS", "NODE_OPTIONS"] as const;

/** Return the start variables that this environment sets. */
export function startVariablesSet(): string[] {
  return START_VARIABLES.filter((name) => process.env[name] !== undefined && process.env[name] !== "");
}

/** This environment without the start variables. */
function environmentWithoutStartVariables(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of START_VARIABLES) delete env[name];
  return env;
}

/** Returns whether a wireguard-go process serves the interface. Zombies count as stopped. */
export async function isWireGuardGoRunning(interfaceName: string): Promise<boolean> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0");
      if (argv[0]?.split("/").pop() === "wireguard-go" && argv[1] === interfaceName) return true;
    } catch {
      // The process ended while it was read.
    }
  }
  return false;
}

/**
 * Takes the main profile down and up again: the restore step after a disturbed run, which may
 * have left it broken, or down with automatic teardown.
 */
export async function bringUpAgain(context: Context): Promise<void> {
  await context.vpnns.checked(["down", MAIN_PROFILE]);
  await context.vpnns.checked(["up", MAIN_PROFILE]);
}

export interface LifecycleResults {
  nodeStartMs: number[];
  vpnnsUp: CommandResult[];
  vpnnsDown: CommandResult[];
  baselineUp: CommandResult[];
  baselineDown: CommandResult[];
}

/**
 * Times cold `vpnns -v up` and `vpnns -v down` of one profile and the baseline scripts with
 * --trace, interleaved in each repetition so that a change in the machine's load hits all four.
 */
export async function measureLifecycle(context: Context, baselineProfile: string): Promise<LifecycleResults> {
  const { vpnns, sizes } = context;
  const results: LifecycleResults = { nodeStartMs: [], vpnnsUp: [], vpnnsDown: [], baselineUp: [], baselineDown: [] };
  for (let repetition = 1; repetition <= sizes.lifecycleRepetitions; repetition += 1) {
    context.checkAborted();
    context.progress(`cold up and down, repetition ${repetition} of ${sizes.lifecycleRepetitions}`);
    results.nodeStartMs.push(await timeNodeStart());
    const up = () => vpnns.measured(["-v", "up", MAIN_PROFILE]);
    results.vpnnsUp.push(await withRetries(context, `vpnns up ${MAIN_PROFILE}`, up, () => vpnns.checked(["down", MAIN_PROFILE])));
    const down = async () => {
      // A daemon stopped from outside would leave `down` less to do than it normally has.
      if (!(await isWireGuardGoRunning(MAIN_INTERFACE))) throw new Error(`the wireguard-go daemon of ${MAIN_INTERFACE} stopped before vpnns down`);
      return vpnns.measured(["-v", "down", MAIN_PROFILE]);
    };
    results.vpnnsDown.push(await withRetries(context, `vpnns down ${MAIN_PROFILE}`, down, () => bringUpAgain(context)));
    results.baselineUp.push(await runChecked(["bash", BASELINE_UP, "--trace", BASELINE_NAMESPACE, BASELINE_INTERFACE, baselineProfile]));
    results.baselineDown.push(await runChecked(["bash", BASELINE_DOWN, "--trace", BASELINE_NAMESPACE, BASELINE_INTERFACE]));
  }
  return results;
}

export interface LaunchResults {
  nodeStartMs: number[];
  /** `node -e 0` without the start variables, when this environment sets any; empty otherwise. */
  plainNodeStartMs: number[];
  netnsExecMs: number[];
  /** `vpnns --version`: Node.js start, loading the main module of the command line, and exit. */
  versionMs: number[];
  vpnnsRun: CommandResult[];
}

/** Times `vpnns -v run -- true` on a profile that is up, and the parts of its floor. */
export async function measureLaunch(context: Context): Promise<LaunchResults> {
  const { vpnns, sizes } = context;
  const namespace = `vpnns-${MAIN_PROFILE}`;
  const results: LaunchResults = { nodeStartMs: [], plainNodeStartMs: [], netnsExecMs: [], versionMs: [], vpnnsRun: [] };
  const measurePlainStart = startVariablesSet().length > 0;
  for (let repetition = 1; repetition <= sizes.launchRepetitions; repetition += 1) {
    context.checkAborted();
    if (repetition === 1 || repetition % 5 === 0) context.progress(`launch, repetition ${repetition} of ${sizes.launchRepetitions}`);
    results.nodeStartMs.push(await timeNodeStart());
    if (measurePlainStart) results.plainNodeStartMs.push(await timeNodeStart(environmentWithoutStartVariables()));
    results.netnsExecMs.push((await runChecked(["ip", "netns", "exec", namespace, "true"])).elapsedMs);
    results.versionMs.push((await vpnns.checked(["--version"])).elapsedMs);
    const run = () => vpnns.measured(["-v", "run", "--profile", MAIN_PROFILE, "--", "true"]);
    results.vpnnsRun.push(await withRetries(context, `vpnns run --profile ${MAIN_PROFILE} -- true`, run, () => bringUpAgain(context)));
  }
  return results;
}

export interface MemoryResults {
  /** VmHWM of the waiting vpnns process, in bytes: the peak resident set size of its life so far. */
  peakBytes: number[];
  /** VmRSS at the same moment, in bytes. */
  residentBytes: number[];
  /** VmHWM of `node -e 'setTimeout(() => {}, 2000)'` after one second, in bytes: a Node.js process that loads nothing. */
  idleNodePeakBytes: number[];
}

/** Reads a "Name: N kB" field of /proc/PID/status in bytes. */
async function readStatusBytes(pid: number, field: string): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** Waits until a process with the command name runs in the namespace. */
async function waitForProcessIn(namespace: string, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    // Read on every pass, because a run that rebuilds the profile makes a new namespace.
    const link = await stat(`/run/netns/${namespace}`).then(
      (info) => `net:[${info.ino}]`,
      () => undefined,
    );
    for (const entry of link === undefined ? [] : await readdir("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if ((await readlink(`/proc/${entry}/ns/net`)) !== link) continue;
        if ((await readFile(`/proc/${entry}/comm`, "utf8")).trim() === name) return;
      } catch {
        // The process ended while it was read.
      }
    }
    await sleep(20);
  }
  throw new Error(`no ${name} process appeared in ${namespace} within ${timeoutMs} ms`);
}

/**
 * Starts `vpnns run -- sleep N` and reads the memory of the vpnns process (the Node.js process
 * itself, because the benchmark starts node directly) one second before the app ends.
 */
async function readWaitingMemory(context: Context): Promise<{ peak: number; resident: number }> {
  const { vpnns, sizes } = context;
  let pid: number | undefined;
  const args = ["run", "--profile", MAIN_PROFILE, "--", "sleep", String(sizes.memorySleepSeconds)];
  const running = vpnns.measured(args, {
    onSpawn: (childPid) => {
      pid = childPid;
    },
  });
  // The run ends by itself when its app does. It is awaited before any error is raised, and its
  // own error comes first, because it explains a failure to find the app.
  const reading = (async () => {
    await waitForProcessIn(`vpnns-${MAIN_PROFILE}`, "sleep", 10_000);
    await sleep(Math.max(0, sizes.memorySleepSeconds * 1000 - 1000));
    if (pid === undefined) throw new Error("the vpnns run process has no pid");
    return { peak: await readStatusBytes(pid, "VmHWM"), resident: await readStatusBytes(pid, "VmRSS") };
  })();
  const [run, memory] = await Promise.allSettled([running, reading]);
  if (run.status === "rejected") throw run.reason;
  if (memory.status === "rejected") throw memory.reason;
  return memory.value;
}

async function readIdleNodeMemory(): Promise<number> {
  let pid: number | undefined;
  const running = runChecked([process.execPath, "-e", "setTimeout(() => {}, 2000)"], {
    onSpawn: (childPid) => {
      pid = childPid;
    },
  });
  await sleep(1000);
  const peak = pid === undefined ? undefined : await readStatusBytes(pid, "VmHWM").catch(() => undefined);
  await running;
  if (peak === undefined) throw new Error("could not read VmHWM of the idle node process");
  return peak;
}

export async function measureWaitingMemory(context: Context): Promise<MemoryResults> {
  const { sizes } = context;
  const results: MemoryResults = { peakBytes: [], residentBytes: [], idleNodePeakBytes: [] };
  for (let repetition = 1; repetition <= sizes.memoryRepetitions; repetition += 1) {
    context.checkAborted();
    context.progress(`memory of a waiting run, repetition ${repetition} of ${sizes.memoryRepetitions}`);
    const read = () => readWaitingMemory(context);
    const memory = await withRetries(context, `vpnns run --profile ${MAIN_PROFILE} -- sleep`, read, () => bringUpAgain(context));
    results.peakBytes.push(memory.peak);
    results.residentBytes.push(memory.resident);
    results.idleNodePeakBytes.push(await readIdleNodeMemory());
  }
  return results;
}

export interface ScalingBatch {
  /** Profiles up at once. */
  count: number;
  /** One entry per `vpnns -v up`, in order: the k-th ran with k - 1 profiles already up. */
  ups: CommandResult[];
  /** `vpnns status` with all profiles of the batch up. */
  statusMs: number[];
  /** One entry per `vpnns down`, in the order of the ups. */
  downMs: number[];
  /** The maximum number of profiles that one `vpnns status` run reported as broken. */
  brokenInStatus: number;
}

export function scalingProfile(index: number): string {
  return `bench-s${index}`;
}

/** Brings `count` profiles up one after another, times `vpnns status`, and takes them down again. */
async function runScalingBatch(context: Context, count: number): Promise<ScalingBatch> {
  const { vpnns, sizes } = context;
  const batch: ScalingBatch = { count, ups: [], statusMs: [], downMs: [], brokenInStatus: 0 };
  try {
    for (let index = 1; index <= count; index += 1) {
      context.checkAborted();
      if (index === 1 || index % 10 === 0) context.progress(`scaling: up ${index} of ${count}`);
      const profile = scalingProfile(index);
      const up = () => vpnns.measured(["-v", "up", profile]);
      batch.ups.push(await withRetries(context, `vpnns up ${profile}`, up, () => vpnns.checked(["down", profile])));
    }
    for (let repetition = 1; repetition <= sizes.statusRepetitions; repetition += 1) {
      context.checkAborted();
      const status = await vpnns.checked(["status"]);
      batch.statusMs.push(status.elapsedMs);
      batch.brokenInStatus = Math.max(batch.brokenInStatus, status.stdout.match(/^\S+: broken$/gm)?.length ?? 0);
    }
  } finally {
    context.progress(`scaling: taking ${batch.ups.length} profiles down`);
    for (let index = 1; index <= batch.ups.length; index += 1) {
      batch.downMs.push((await vpnns.checked(["down", scalingProfile(index)])).elapsedMs);
    }
  }
  return batch;
}

/** Runs the scaling batches; the batch with the smallest count runs several times. */
export async function measureScaling(context: Context): Promise<ScalingBatch[]> {
  const { sizes } = context;
  const batches: ScalingBatch[] = [];
  for (const [position, count] of sizes.scalingCounts.entries()) {
    const repetitions = position === 0 ? sizes.scalingSmallestRepetitions : 1;
    for (let repetition = 1; repetition <= repetitions; repetition += 1) {
      context.progress(`scaling: ${count} profiles, batch ${repetition} of ${repetitions}`);
      batches.push(await runScalingBatch(context, count));
    }
  }
  return batches;
}
