/**
 * Shared parts of the measurements: paths in the repository, the lab, the vpnns command line with
 * private config and state folders, the benchmark's profiles, sizes and retries.
 *
 * `npm run bench` builds vpnns as users get it (dist/, with the bundled command line) and copies
 * the build to dist-bench/dist/ before it starts, so a rebuild of dist/ while it runs does not
 * change what it measures. The benchmark itself and the lab are compiled into dist-bench/.
 */
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Lab } from "../src/lab/lab.js";
import { runChecked, runTimed, type CommandOptions, type CommandResult } from "./commands.js";

/** The compiled benchmark lives in dist-bench/bench/, two levels below the repository. */
export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** The copy of the built command line, which reads its version from dist-bench/package.json. */
export const CLI = join(REPO_ROOT, "dist-bench/dist/cli/main.js");
export const BASELINE_UP = join(REPO_ROOT, "bench/baseline-up.sh");
export const BASELINE_DOWN = join(REPO_ROOT, "bench/baseline-down.sh");

/** The vpnns command line as `node dist-bench/dist/cli/main.js`, with the benchmark's config and state folders. */
export class Vpnns {
  private readonly env: NodeJS.ProcessEnv;

  constructor(configDir: string, stateDir: string) {
    this.env = { ...process.env, VPNNS_CONFIG_DIR: configDir, VPNNS_STATE_DIR: stateDir };
  }

  argv(args: readonly string[]): string[] {
    return [process.execPath, CLI, ...args];
  }

  /** Runs vpnns; options.env adds variables to the benchmark's environment. */
  run(args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
    return runTimed(this.argv(args), { ...options, env: { ...this.env, ...options.env } });
  }

  /** Runs vpnns like run() and throws unless it exits with 0. */
  checked(args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
    return runChecked(this.argv(args), { ...options, env: { ...this.env, ...options.env } });
  }

  /**
   * Runs vpnns for a measurement: throws unless it exits with 0, and also when it found the profile
   * half-made and rebuilt it, because then it did more work than the measurement means to time.
   */
  async measured(args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
    const result = await this.checked(args, options);
    const rebuilt = result.stderr.split("\n").find((line) => HALF_MADE.test(line));
    if (rebuilt !== undefined) throw new Error(`vpnns ${args.join(" ")} rebuilt the profile: ${rebuilt}`);
    return result;
  }
}

/** The message of `up` and `run` when they find a profile broken and rebuild it. */
const HALF_MADE = /^vpnns: profile \S+ is half-made/;

/** The folders of one benchmark run, on the sandbox's private /run/vpnns tmpfs. */
export interface WorkDirs {
  root: string;
  configDir: string;
  stateDir: string;
  /** 0700 folder for the wg-quick files that the lab hands out. */
  profileFiles: string;
}

export async function makeWorkDirs(): Promise<WorkDirs> {
  await mkdir("/run/vpnns", { recursive: true });
  const root = await mkdtemp("/run/vpnns/bench-");
  const dirs = { root, configDir: join(root, "config"), stateDir: join(root, "state"), profileFiles: join(root, "wg-quick") };
  await mkdir(dirs.profileFiles, { mode: 0o700 });
  return dirs;
}

/** Adds a lab client and writes its wg-quick file; returns the file's path. */
export async function writeClientProfile(lab: Lab, dirs: WorkDirs, name: string): Promise<string> {
  const client = await lab.addClient();
  const file = join(dirs.profileFiles, `${name}.conf`);
  await writeFile(file, client.profileText, { mode: 0o600 });
  return file;
}

/** Adds a lab client and imports it as a vpnns profile. */
export async function importProfile(lab: Lab, dirs: WorkDirs, vpnns: Vpnns, name: string): Promise<void> {
  const file = await writeClientProfile(lab, dirs, name);
  await vpnns.checked(["profile", "import", file, "--name", name]);
}

/** Repetition counts and sizes of one benchmark run. */
export interface Sizes {
  /** Repetitions of cold up and down, for vpnns and the baseline each. */
  lifecycleRepetitions: number;
  /** Repetitions of `vpnns run -- true` and of its floor. */
  launchRepetitions: number;
  /** Runs of `vpnns run -- sleep` whose memory is read. */
  memoryRepetitions: number;
  /** Seconds that the app sleeps in those runs; the memory is read one second before it ends. */
  memorySleepSeconds: number;
  /** iperf3 runs per direction, and ping runs, for vpnns and the bare tunnel each. */
  networkRepetitions: number;
  /** Seconds that iperf3 measures, after iperf3OmitSeconds that it leaves out for TCP's ramp-up. */
  iperf3Seconds: number;
  iperf3OmitSeconds: number;
  /** Echo requests per ping run, sent every 50 ms. */
  pingCount: number;
  /** Numbers of profiles up at once in the scaling measurement, in increasing order. */
  scalingCounts: number[];
  /** Repetitions of the batch with the smallest count, whose single `up` is the reference. */
  scalingSmallestRepetitions: number;
  /** `vpnns status` runs with all profiles of a batch up. */
  statusRepetitions: number;
  /** Traced runs of each command whose timeline the page shows; the one with the median total is shown. */
  timelineRepetitions: number;
}

export const FULL_SIZES: Sizes = {
  lifecycleRepetitions: 10,
  launchRepetitions: 10,
  memoryRepetitions: 3,
  memorySleepSeconds: 2,
  networkRepetitions: 3,
  iperf3Seconds: 2,
  iperf3OmitSeconds: 1,
  pingCount: 20,
  scalingCounts: [1, 10, 50],
  scalingSmallestRepetitions: 3,
  statusRepetitions: 3,
  timelineRepetitions: 3,
};

export const SMOKE_SIZES: Sizes = {
  lifecycleRepetitions: 1,
  launchRepetitions: 1,
  memoryRepetitions: 1,
  memorySleepSeconds: 2,
  networkRepetitions: 1,
  iperf3Seconds: 1,
  iperf3OmitSeconds: 0,
  pingCount: 3,
  scalingCounts: [1, 2],
  scalingSmallestRepetitions: 1,
  statusRepetitions: 1,
  timelineRepetitions: 1,
};

/** A run left out of the figures, with the reason. */
export interface DiscardedRun {
  /** The command line of the run, shortened to what identifies it, such as "vpnns up bench". */
  command: string;
  reason: string;
}

export interface Context {
  lab: Lab;
  dirs: WorkDirs;
  vpnns: Vpnns;
  sizes: Sizes;
  /** Runs that failed or were disturbed and ran again; the page lists them. */
  discarded: DiscardedRun[];
  /** Prints a progress line on stderr. */
  progress(message: string): void;
  /** Throws once SIGINT or SIGTERM has arrived, so the run stops between two measurements and cleans up. */
  checkAborted(): void;
}

/** Attempts of one measured run before the benchmark gives up. */
const MAX_ATTEMPTS = 3;

/**
 * Runs one measured action, and when it throws, records it as discarded, runs restore to bring
 * back the state that the measurement expects, and tries again, up to MAX_ATTEMPTS in all.
 * Other processes on the machine can disturb a run: the vpnns of another sandbox, for example,
 * can stop this run's wireguard-go daemons, because all sandboxes share one PID namespace.
 */
export async function withRetries<T>(context: Context, command: string, action: () => Promise<T>, restore: () => Promise<unknown>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await action();
    } catch (error) {
      if (attempt >= MAX_ATTEMPTS) throw error;
      const message = error instanceof Error ? error.message : String(error);
      const reason = message.split("\n").filter((line) => line.trim() !== "").pop() ?? message;
      context.discarded.push({ command, reason });
      context.progress(`discarded a run of ${command}: ${reason}; restoring the state and running it again`);
      await restore();
    }
  }
}
