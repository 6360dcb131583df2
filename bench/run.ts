/**
 * The vpnns benchmark: `npm run bench` builds vpnns and this folder, then runs this file inside
 * test/sandbox.sh. It creates the lab provider, measures cold up and down, launch, memory,
 * throughput, latency and scaling, writes docs/benchmarks.md and removes everything it made.
 *
 *   node dist-bench/bench/run.js [--smoke] [--output FILE]
 *
 * --smoke runs each measurement once with tiny sizes and prints the page instead of writing it.
 */
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { runChecked } from "./commands.js";
import { MAIN_PROFILE, BASELINE_INTERFACE, BASELINE_NAMESPACE, measureLaunch, measureLifecycle, measureScaling, measureWaitingMemory, scalingProfile, startVariablesSet } from "./lifecycle.js";
import { BARE_INTERFACE, BARE_NAMESPACE, measureNetwork, startIperf3Server } from "./network.js";
import { measurePublish } from "./publish.js";
import { renderReport, type BenchResults } from "./report.js";
import { measureTimelines } from "./timeline.js";
import {
  BASELINE_DOWN,
  BASELINE_UP,
  CLI,
  FULL_SIZES,
  importProfile,
  makeWorkDirs,
  REPO_ROOT,
  SMOKE_SIZES,
  Vpnns,
  writeClientProfile,
  type Context,
  type WorkDirs,
} from "./setup.js";
import { describeMachine, loadAverage, sourceRevision, toolVersions } from "./system.js";
import { createLab, type Lab } from "../src/lab/lab.js";

const USAGE = "usage: node dist-bench/bench/run.js [--smoke] [--output FILE]   (run it through npm run bench)";
const DEFAULT_OUTPUT = join(REPO_ROOT, "docs/benchmarks.md");
const LAB_ID = "bench";
/** Profile imports that run at once while the scaling profiles are set up. */
const IMPORT_CONCURRENCY = 4;

interface Options {
  smoke: boolean;
  /** The page's path; undefined prints it on stdout. */
  output: string | undefined;
}

function parseArguments(argv: string[]): Options {
  let smoke = false;
  let output: string | undefined;
  let outputGiven = false;
  for (let index = 0; index < argv.length; index += 1) {
    const argument = argv[index];
    if (argument === "--smoke") smoke = true;
    else if (argument === "--output" && argv[index + 1] !== undefined) {
      output = argv[index + 1];
      outputGiven = true;
      index += 1;
    } else if (argument === "--help" || argument === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else {
      throw new Error(`unknown argument ${JSON.stringify(argument)}; ${USAGE}`);
    }
  }
  if (!outputGiven && !smoke) output = DEFAULT_OUTPUT;
  return { smoke, output };
}

function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

let abortSignal: NodeJS.Signals | undefined;

function checkAborted(): void {
  if (abortSignal !== undefined) throw new Error(`interrupted by ${abortSignal}`);
}

/** Removes everything the run may have left; each failure is reported and the rest still runs. */
async function cleanUp(lab: Lab | undefined, vpnns: Vpnns, dirs: WorkDirs): Promise<void> {
  const attempt = async (what: string, action: () => Promise<unknown>) => {
    try {
      await action();
    } catch (error) {
      progress(`warning: failed to ${what}: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  await attempt("take every profile down", () => vpnns.checked(["down", "--all"]));
  for (const [namespace, link] of [[BASELINE_NAMESPACE, BASELINE_INTERFACE], [BARE_NAMESPACE, BARE_INTERFACE]] as const) {
    await attempt(`remove ${namespace}`, () => runChecked(["bash", BASELINE_DOWN, namespace, link]));
  }
  if (lab) await attempt("destroy the lab", () => lab.destroy());
  await attempt(`remove ${dirs.root}`, () => rm(dirs.root, { recursive: true, force: true }));
}

async function measure(context: Context, startedAt: Date): Promise<BenchResults> {
  const { lab, dirs, vpnns, sizes } = context;
  const started = performance.now();
  const loadAverages: BenchResults["loadAverages"] = [];
  const section = async (name: string) => {
    loadAverages.push({ section: name, load: await loadAverage() });
    context.checkAborted();
  };

  const machine = describeMachine();
  const versions = await toolVersions(CLI);
  const revision = await sourceRevision(REPO_ROOT);
  progress("importing profiles");
  await importProfile(lab, dirs, vpnns, MAIN_PROFILE);
  const baselineProfile = await writeClientProfile(lab, dirs, "baseline");
  const bareProfile = await writeClientProfile(lab, dirs, "bare");

  await section("up and down");
  const lifecycle = await measureLifecycle(context, baselineProfile);

  await section("launch");
  await vpnns.checked(["up", MAIN_PROFILE]);
  const launch = await measureLaunch(context);
  await section("memory");
  const memory = await measureWaitingMemory(context);
  await section("timelines");
  const timelines = await measureTimelines(context);

  await section("network");
  await runChecked(["bash", BASELINE_UP, "--no-kill-switch", BARE_NAMESPACE, BARE_INTERFACE, bareProfile]);
  const server = await startIperf3Server(context);
  let network: BenchResults["network"];
  try {
    network = await measureNetwork(context);
  } finally {
    await server.stop();
  }
  await runChecked(["bash", BASELINE_DOWN, BARE_NAMESPACE, BARE_INTERFACE]);
  await section("published port");
  const publish = await measurePublish(context);
  await vpnns.checked(["down", MAIN_PROFILE]);

  progress("importing the scaling profiles");
  const names = Array.from({ length: Math.max(...sizes.scalingCounts) }, (_, index) => scalingProfile(index + 1));
  // Imports are setup, not measured, so several run at once.
  for (let start = 0; start < names.length; start += IMPORT_CONCURRENCY) {
    context.checkAborted();
    await Promise.all(names.slice(start, start + IMPORT_CONCURRENCY).map((name) => importProfile(lab, dirs, vpnns, name)));
  }
  await section("scaling");
  const scaling = await measureScaling(context);

  return {
    smoke: sizes === SMOKE_SIZES,
    sizes,
    startedAt,
    durationMs: performance.now() - started,
    machine,
    versions,
    revision,
    startVariables: startVariablesSet(),
    loadAverages,
    lifecycle,
    launch,
    memory,
    network,
    publish,
    scaling,
    timelines,
    discarded: context.discarded,
  };
}

async function main(argv: string[]): Promise<number> {
  const options = parseArguments(argv);
  if (process.env.VPNNS_SANDBOX !== "1") {
    process.stderr.write("bench: must run inside test/sandbox.sh, which `npm run bench` does; run it as root\n");
    return 1;
  }
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      abortSignal ??= signal;
      progress(`${signal} received: stopping after the current command and cleaning up`);
    });
  }

  const startedAt = new Date();
  const dirs = await makeWorkDirs();
  const vpnns = new Vpnns(dirs.configDir, dirs.stateDir);
  let lab: Lab | undefined;
  let page: string;
  try {
    progress("creating the lab");
    lab = await createLab({ id: LAB_ID });
    const sizes = options.smoke ? SMOKE_SIZES : FULL_SIZES;
    const context: Context = { lab, dirs, vpnns, sizes, discarded: [], progress, checkAborted };
    page = renderReport(await measure(context, startedAt));
  } finally {
    progress("cleaning up");
    await cleanUp(lab, vpnns, dirs);
  }

  if (options.output === undefined) {
    process.stdout.write(page);
  } else {
    await writeFile(options.output, page);
    progress(`wrote ${options.output}`);
  }
  return 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
