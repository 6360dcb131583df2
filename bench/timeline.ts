/**
 * Timelines of single vpnns commands: when the Node.js process was ready, which child processes it
 * started and for how long, and where it ran its own code in between. They come from extra runs
 * with bench/trace-spawns.ts preloaded, which are not part of the timed figures.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { CommandResult } from "./commands.js";
import { bringUpAgain, MAIN_PROFILE } from "./lifecycle.js";
import { REPO_ROOT, withRetries, type Context } from "./setup.js";
import { summarize } from "./stats.js";

const TRACER = join(REPO_ROOT, "dist-bench/bench/trace-spawns.js");
/** Gaps between child processes shorter than this are not shown as a row of their own. */
const MIN_GAP_MS = 3;

export interface TimelineRow {
  fromMs: number;
  toMs: number;
  /** A child's command line, or a description of what the vpnns process itself did. */
  activity: string;
  isChild: boolean;
}

export interface Timeline {
  command: string;
  /** Wall-clock time from the spawn to the exit, as the benchmark saw it. */
  totalMs: number;
  rows: TimelineRow[];
}

/** Replaces WireGuard keys (44 base64 characters) with KEY, so command lines stay short. */
function shorten(commandLine: string): string {
  return commandLine.replace(/[A-Za-z0-9+/]{43}=/g, "KEY");
}

/** Builds the timeline of one traced run from its "[bench]" lines. */
export function parseTimeline(command: string, result: CommandResult): Timeline {
  let readyMs = 0;
  let exitMs = result.elapsedMs;
  const children = new Map<number, TimelineRow>();
  for (const { text } of result.stderrLines) {
    const [tag, event, time, pid, ...argv] = text.split(" ");
    if (tag !== "[bench]") continue;
    const atMs = Number(time);
    if (event === "ready") readyMs = atMs;
    else if (event === "exit") exitMs = atMs;
    else if (event === "spawn") children.set(Number(pid), { fromMs: atMs, toMs: atMs, activity: shorten(argv.join(" ")), isChild: true });
    else if (event === "reaped") {
      const child = children.get(Number(pid));
      if (child) child.toMs = atMs;
    }
  }

  const rows: TimelineRow[] = [{ fromMs: 0, toMs: readyMs, activity: "Node.js starts until the main module loads", isChild: false }];
  let coveredUntil = readyMs;
  for (const child of [...children.values()].sort((a, b) => a.fromMs - b.fromMs)) {
    if (child.fromMs - coveredUntil >= MIN_GAP_MS) {
      rows.push({ fromMs: coveredUntil, toMs: child.fromMs, activity: "vpnns itself", isChild: false });
    }
    rows.push(child);
    coveredUntil = Math.max(coveredUntil, child.toMs);
  }
  rows.push({ fromMs: coveredUntil, toMs: exitMs, activity: "vpnns itself, until exit", isChild: false });
  return { command, totalMs: result.elapsedMs, rows };
}

/** Runs the traced command several times and keeps the run with the median total. */
async function traceCommand(context: Context, args: string[], before?: () => Promise<unknown>): Promise<Timeline> {
  const env = { NODE_OPTIONS: `--import=${pathToFileURL(TRACER).href}` };
  const command = `vpnns ${args.join(" ")}`;
  const timelines: Timeline[] = [];
  for (let repetition = 1; repetition <= context.sizes.timelineRepetitions; repetition += 1) {
    context.checkAborted();
    await before?.();
    const run = () => context.vpnns.measured(args, { env });
    timelines.push(parseTimeline(command, await withRetries(context, command, run, () => bringUpAgain(context))));
  }
  const median = summarize(timelines.map((timeline) => timeline.totalMs)).median;
  return timelines.reduce((best, timeline) => (Math.abs(timeline.totalMs - median) < Math.abs(best.totalMs - median) ? timeline : best));
}

/** Traces `up`, `down` and `run -- true` of the main profile, which must be up, and leaves it up. */
export async function measureTimelines(context: Context): Promise<Timeline[]> {
  const { vpnns } = context;
  context.progress("timelines of up, down and run");
  const run = await traceCommand(context, ["run", "--profile", MAIN_PROFILE, "--", "true"]);
  const down = await traceCommand(context, ["down", MAIN_PROFILE], () => vpnns.checked(["up", MAIN_PROFILE]));
  const up = await traceCommand(context, ["up", MAIN_PROFILE], () => vpnns.checked(["down", MAIN_PROFILE]));
  return [up, down, run];
}
