/** The benchmark page: figures, goals met or missed, per-step breakdowns and the conditions of the run. */
import type { LaunchResults, LifecycleResults, MemoryResults, ScalingBatch } from "./lifecycle.js";
import type { NetworkResults } from "./network.js";
import type { PublishResults } from "./publish.js";
import type { DiscardedRun, Sizes } from "./setup.js";
import { summarizeSteps, START_STEP } from "./steps.js";
import { formatMs, formatRatio, formatSummaryMs, summarize, type Summary } from "./stats.js";
import type { MachineInfo } from "./system.js";
import type { Timeline } from "./timeline.js";

export interface BenchResults {
  smoke: boolean;
  sizes: Sizes;
  startedAt: Date;
  durationMs: number;
  machine: MachineInfo;
  versions: [string, string][];
  /** The commit of the measured sources, with a remark when src/ had uncommitted changes. */
  revision: string;
  /** Variables of this environment that slow every Node.js start, such as NODE_EXTRA_CA_CERTS. */
  startVariables: string[];
  /** 1-minute load average at the start of each measurement. */
  loadAverages: { section: string; load: number }[];
  lifecycle: LifecycleResults;
  launch: LaunchResults;
  memory: MemoryResults;
  network: NetworkResults;
  publish: PublishResults;
  scaling: ScalingBatch[];
  timelines: Timeline[];
  discarded: DiscardedRun[];
}

/** Goal thresholds. */
const GOALS = {
  upRatio: 1.5,
  downRatio: 1.5,
  launchRatio: 1.3,
  waitingPeakBytes: 60e6,
  throughputShare: 0.97,
  statusMs: 500,
  scalingUpRatio: 1.2,
};
/** The ups at the end of the largest scaling batch that the scaling goal compares. */
const SCALING_TAIL = 10;

function median(samples: readonly number[]): number {
  return summarize(samples).median;
}

function elapsed(results: readonly { elapsedMs: number }[]): number[] {
  return results.map((result) => result.elapsedMs);
}

function verdict(met: boolean): string {
  return met ? "met" : "**missed**";
}

function formatMegabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function formatMbits(bitsPerSecond: number): string {
  return `${(bitsPerSecond / 1e6).toFixed(0)} Mbit/s`;
}

function formatSummaryWith(summary: Summary, format: (value: number) => string): string {
  return `${format(summary.median)} (${format(summary.min)}–${format(summary.max)})`;
}

function table(header: string[], rows: string[][]): string {
  const lines = [`| ${header.join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`];
  for (const row of rows) lines.push(`| ${row.join(" | ")} |`);
  return lines.join("\n");
}

/** Figures that the goals and the summary table use. */
interface Figures {
  upFloorMs: number;
  downFloorMs: number;
  launchFloorMs: number;
  upRatio: number;
  downRatio: number;
  launchRatio: number;
  uploadShare: number;
  downloadShare: number;
  largest: ScalingBatch;
  smallestUps: number[];
  tailUps: number[];
  scalingRatio: number;
  statusLargest: Summary;
}

function computeFigures(results: BenchResults): Figures {
  const { lifecycle, launch, network, scaling } = results;
  const lifecycleNode = median(lifecycle.nodeStartMs);
  const upFloorMs = median(elapsed(lifecycle.baselineUp)) + lifecycleNode;
  const downFloorMs = median(elapsed(lifecycle.baselineDown)) + lifecycleNode;
  const launchFloorMs = median(launch.nodeStartMs) + median(launch.netnsExecMs);

  const smallestCount = Math.min(...scaling.map((batch) => batch.count));
  const largestCount = Math.max(...scaling.map((batch) => batch.count));
  const smallestUps = scaling.filter((batch) => batch.count === smallestCount).flatMap((batch) => elapsed(batch.ups));
  const largest = scaling.find((batch) => batch.count === largestCount)!;
  const tailUps = elapsed(largest.ups.slice(-Math.min(SCALING_TAIL, largest.ups.length)));

  return {
    upFloorMs,
    downFloorMs,
    launchFloorMs,
    upRatio: median(elapsed(lifecycle.vpnnsUp)) / upFloorMs,
    downRatio: median(elapsed(lifecycle.vpnnsDown)) / downFloorMs,
    launchRatio: median(elapsed(launch.vpnnsRun)) / launchFloorMs,
    uploadShare: median(network.vpnns.uploadBitsPerSecond) / median(network.bare.uploadBitsPerSecond),
    downloadShare: median(network.vpnns.downloadBitsPerSecond) / median(network.bare.downloadBitsPerSecond),
    largest,
    smallestUps,
    tailUps,
    scalingRatio: median(tailUps) / median(smallestUps),
    statusLargest: summarize(largest.statusMs),
  };
}

function renderSummaryTable(results: BenchResults, figures: Figures): string {
  const { lifecycle, launch, memory, network } = results;
  const peak = summarize(memory.peakBytes);
  const tailFrom = figures.largest.count - figures.tailUps.length + 1;
  const percent = (share: number) => `${(share * 100).toFixed(1)} %`;
  const rows = [
    [
      "cold `up`, until the first handshake",
      formatSummaryMs(summarize(elapsed(lifecycle.vpnnsUp))),
      `${formatMs(figures.upFloorMs)}: baseline-up.sh + \`node -e 0\``,
      formatRatio(figures.upRatio),
      `≤ ${formatRatio(GOALS.upRatio)}: ${verdict(figures.upRatio <= GOALS.upRatio)}`,
    ],
    [
      "`down`",
      formatSummaryMs(summarize(elapsed(lifecycle.vpnnsDown))),
      `${formatMs(figures.downFloorMs)}: baseline-down.sh + \`node -e 0\``,
      formatRatio(figures.downRatio),
      `≤ ${formatRatio(GOALS.downRatio)}: ${verdict(figures.downRatio <= GOALS.downRatio)}`,
    ],
    [
      "`run -- true` on a profile that is up",
      formatSummaryMs(summarize(elapsed(launch.vpnnsRun))),
      `${formatMs(figures.launchFloorMs)}: \`node -e 0\` + \`ip netns exec NS true\``,
      formatRatio(figures.launchRatio),
      `≤ ${formatRatio(GOALS.launchRatio)}: ${verdict(figures.launchRatio <= GOALS.launchRatio)}`,
    ],
    [
      "peak RSS (VmHWM) of a `run` waiting for its app",
      formatSummaryWith(peak, formatMegabytes),
      "–",
      "–",
      `< ${formatMegabytes(GOALS.waitingPeakBytes)}: ${verdict(peak.median < GOALS.waitingPeakBytes)}`,
    ],
    [
      "TCP throughput, client to server",
      formatSummaryWith(summarize(network.vpnns.uploadBitsPerSecond), formatMbits),
      `${formatMbits(median(network.bare.uploadBitsPerSecond))}: bare tunnel`,
      percent(figures.uploadShare),
      `≥ ${percent(GOALS.throughputShare)}: ${verdict(figures.uploadShare >= GOALS.throughputShare)}`,
    ],
    [
      "TCP throughput, server to client",
      formatSummaryWith(summarize(network.vpnns.downloadBitsPerSecond), formatMbits),
      `${formatMbits(median(network.bare.downloadBitsPerSecond))}: bare tunnel`,
      percent(figures.downloadShare),
      `≥ ${percent(GOALS.throughputShare)}: ${verdict(figures.downloadShare >= GOALS.throughputShare)}`,
    ],
    [
      "ping round trip",
      formatSummaryMs(summarize(network.vpnns.pingMs)),
      `${formatMs(median(network.bare.pingMs))}: bare tunnel`,
      formatRatio(median(network.vpnns.pingMs) / median(network.bare.pingMs)),
      "none",
    ],
    [
      `\`status\` with ${figures.largest.count} profiles up`,
      formatSummaryMs(figures.statusLargest),
      "–",
      "–",
      `< ${formatMs(GOALS.statusMs)}: ${verdict(figures.statusLargest.median < GOALS.statusMs)}`,
    ],
    [
      `\`up\` of profiles ${tailFrom}–${figures.largest.count}, with ${tailFrom - 1}–${figures.largest.count - 1} others up`,
      formatSummaryMs(summarize(figures.tailUps)),
      `${formatMs(median(figures.smallestUps))}: \`up\` with no other profile up`,
      formatRatio(figures.scalingRatio),
      `≤ ${formatRatio(GOALS.scalingUpRatio)}: ${verdict(figures.scalingRatio <= GOALS.scalingUpRatio)}`,
    ],
  ];
  return table(["measurement", "vpnns: median (min–max)", "floor or reference: median", "ratio", "goal"], rows);
}

/** Renders a step table with the medians of vpnns and of the baseline side by side. */
function renderStepTable(vpnnsRuns: LifecycleResults["vpnnsUp"], baselineRuns: LifecycleResults["baselineUp"]): string {
  const vpnnsSteps = summarizeSteps(vpnnsRuns);
  const baselineSteps = summarizeSteps(baselineRuns);
  const steps = [...new Set([...vpnnsSteps, ...baselineSteps].map((entry) => entry.step))];
  const lookup = (list: typeof vpnnsSteps, step: string) => {
    const found = list.find((entry) => entry.step === step);
    return found ? formatMs(found.medianMs) : "–";
  };
  const rows = steps.map((step) => [step, lookup(vpnnsSteps, step), lookup(baselineSteps, step)]);
  rows.push([
    "whole command",
    formatMs(median(elapsed(vpnnsRuns))),
    formatMs(median(elapsed(baselineRuns))),
  ]);
  return table(["step", "vpnns: median", "baseline: median"], rows);
}

/** Describes which WireGuard backend the vpnns runs used, read from their "[#]" lines. */
function describeBackend(lifecycle: LifecycleResults): string {
  const runsWith = (pattern: RegExp) =>
    lifecycle.vpnnsUp.filter((run) => run.stderrLines.some((line) => pattern.test(line.text))).length;
  if (runsWith(/^\[#\] wireguard-go /) === 0) {
    return "vpnns used kernel WireGuard, while the baseline always starts wireguard-go, so their link steps differ.";
  }
  const kernelTries = runsWith(/^\[#\] ip link add dev \S+ type wireguard$/);
  if (kernelTries === 0) return "Both use wireguard-go.";
  const runs = lifecycle.vpnnsUp.length;
  const attempt =
    `In ${kernelTries} of ${runs} runs, vpnns started it after its attempt at kernel WireGuard ` +
    "(`ip link add … type wireguard`, from the `auto` backend setting) failed.";
  if (kernelTries === runs) return `Both use wireguard-go. ${attempt}`;
  return (
    `Both use wireguard-go. ${attempt} The other runs started it at once, because the \`auto\` backend records ` +
    "the failure in `no-kernel-wireguard` in the state folder. In the step tables, a run without a step counts as 0 ms."
  );
}

function renderFloorTable(results: BenchResults): string {
  const { lifecycle, launch } = results;
  const rows: [string, number[]][] = [
    ["`bench/baseline-up.sh`", elapsed(lifecycle.baselineUp)],
    ["`bench/baseline-down.sh`", elapsed(lifecycle.baselineDown)],
    ["`node -e 0`, in the up and down loop", lifecycle.nodeStartMs],
    ["`node -e 0`, in the launch loop", launch.nodeStartMs],
    ...(launch.plainNodeStartMs.length > 0 ? [[`\`node -e 0\` without ${results.startVariables.join(" and ")}, for reference`, launch.plainNodeStartMs] as [string, number[]]] : []),
    ["`ip netns exec vpnns-bench true`", launch.netnsExecMs],
    ["`vpnns --version`: start, load the main module, exit", launch.versionMs],
  ];
  return table(
    ["command", "median (min–max)", "runs"],
    rows.map(([name, samples]) => [name, formatSummaryMs(summarize(samples)), String(samples.length)]),
  );
}

function renderScalingTable(results: BenchResults): string {
  const counts = [...new Set(results.scaling.map((batch) => batch.count))];
  const rows = counts.map((count) => {
    const batches = results.scaling.filter((batch) => batch.count === count);
    const ups = batches.flatMap((batch) => elapsed(batch.ups));
    const last = batches.map((batch) => batch.ups[batch.ups.length - 1]!.elapsedMs);
    return [
      String(count),
      String(batches.length),
      formatSummaryMs(summarize(ups)),
      formatSummaryMs(summarize(last)),
      formatSummaryMs(summarize(batches.flatMap((batch) => batch.statusMs))),
      formatSummaryMs(summarize(batches.flatMap((batch) => batch.downMs))),
    ];
  });
  return table(
    ["profiles up", "batches", "each `up`: median (min–max)", "last `up` of a batch", "`status` with all up", "each `down`"],
    rows,
  );
}

function renderNetworkTable(results: BenchResults): string {
  const { vpnns, bare } = results.network;
  const row = (name: string, pick: (path: typeof vpnns) => number[], format: (value: number) => string) => [
    name,
    formatSummaryWith(summarize(pick(vpnns)), format),
    formatSummaryWith(summarize(pick(bare)), format),
    `${((median(pick(vpnns)) / median(pick(bare))) * 100).toFixed(1)} %`,
  ];
  return table(
    ["measurement", "through `vpnns run`: median (min–max)", "bare tunnel: median (min–max)", "vpnns / bare"],
    [
      row("TCP, client to server", (path) => path.uploadBitsPerSecond, formatMbits),
      row("TCP, server to client (`-R`)", (path) => path.downloadBitsPerSecond, formatMbits),
      row("ping round trip", (path) => path.pingMs, formatMs),
    ],
  );
}

function renderPublishTable(results: BenchResults): string {
  const { published, socketProxyd, inside } = results.publish;
  const paths: [string, typeof inside | undefined][] = [
    ["`vpnns publish` (supervisor and forwarder)", published],
    ["one systemd-socket-proxyd, inside the namespace (reference)", socketProxyd],
    ["from inside the namespace, no relay (floor)", inside],
  ];
  const share = (samples: number[], floor: number[]) => `${((median(samples) / median(floor)) * 100).toFixed(1)} %`;
  const rows = paths
    .filter((entry): entry is [string, typeof inside] => entry[1] !== undefined)
    .map(([name, samples]) => [
      name,
      formatSummaryWith(summarize(samples.uploadBitsPerSecond), formatMbits),
      share(samples.uploadBitsPerSecond, inside.uploadBitsPerSecond),
      formatSummaryWith(summarize(samples.downloadBitsPerSecond), formatMbits),
      share(samples.downloadBitsPerSecond, inside.downloadBitsPerSecond),
    ]);
  return table(["path to 127.0.0.1 inside", "host to service: median (min–max)", "of floor", "service to host (`-R`)", "of floor"], rows);
}

/** Renders one timeline with the share of time spent in child processes and in vpnns itself. */
function renderTimeline(timeline: Timeline): string {
  const childMs = timeline.rows.filter((row) => row.isChild).reduce((sum, row) => sum + row.toMs - row.fromMs, 0);
  const rows = timeline.rows.map((row) => [
    `${formatMs(row.fromMs)} – ${formatMs(row.toMs)}`,
    formatMs(row.toMs - row.fromMs),
    row.isChild ? `\`${row.activity}\`` : `*${row.activity}*`,
  ]);
  return [
    `\`${timeline.command}\`: ${formatMs(timeline.totalMs)} in all, ${formatMs(childMs)} of it in ${timeline.rows.filter((row) => row.isChild).length} child processes.`,
    "",
    table(["from – to", "takes", "child process, or *what vpnns does*"], rows),
  ].join("\n");
}

/** Renders whether the min–max ranges of the two paths overlap, which separates noise from a real difference. */
function renderOverlapNote(results: BenchResults): string {
  const { vpnns, bare } = results.network;
  const overlap = (a: number[], b: number[]) => Math.max(...a) >= Math.min(...b) && Math.max(...b) >= Math.min(...a);
  const directions = [
    ["client to server", overlap(vpnns.uploadBitsPerSecond, bare.uploadBitsPerSecond)],
    ["server to client", overlap(vpnns.downloadBitsPerSecond, bare.downloadBitsPerSecond)],
  ] as const;
  const sentences = directions.map(([name, overlaps]) =>
    overlaps
      ? `For ${name}, the ranges of the two paths overlap, so the difference between their medians is within the variation between runs on this machine.`
      : `For ${name}, the ranges of the two paths do not overlap.`,
  );
  return `\n${sentences.join(" ")}\n`;
}

function renderLaunchSteps(results: BenchResults): string {
  const steps = summarizeSteps(results.launch.vpnnsRun);
  return table(
    ["part of `vpnns -v run -- true`", "median"],
    steps.map((entry) => [entry.step === START_STEP ? "start until the app starts (`[#] nsenter …`)" : entry.step, formatMs(entry.medianMs)]),
  );
}

export function renderReport(results: BenchResults): string {
  const figures = computeFigures(results);
  const { machine, sizes } = results;
  const loads = results.loadAverages.map((entry) => `${entry.section} ${entry.load.toFixed(2)}`).join(", ");
  const minutes = (results.durationMs / 60_000).toFixed(1);
  const smallest = sizes.scalingCounts[0];
  return `# Benchmarks

${results.smoke ? "**Smoke run: one repetition of each measurement with tiny sizes. These figures only show that the benchmark works.**\n\n" : ""}These figures come from \`npm run bench\` (bench/run.ts) on ${results.startedAt.toISOString().slice(0, 10)}, as measured. Every time is the wall-clock time from the start of a process to its exit, as the benchmark process sees it, and every figure is the median of its runs with the minimum and maximum beside it. Each section says how many runs it has, and a figure from one run shows the same value three times.

## How to reproduce

As root, from a clone where \`VPNNS_SETUP_TESTS=1 scripts/setup\` also installed iperf3, iputils-ping and systemd (without systemd's \`systemd-socket-proxyd\`, the published-port table has no reference row):

\`\`\`sh
npm run bench              # builds, runs everything in test/sandbox.sh, rewrites docs/benchmarks.md
npm run bench -- --smoke   # one repetition with tiny sizes, prints the page instead of writing it
\`\`\`

The ${results.smoke ? "smoke" : "full"} run took ${minutes} minutes. Everything runs in the private sandbox of \`test/sandbox.sh\` against the local lab provider (src/lab/lab.ts), whose WireGuard server is wireguard-go in a namespace of its own, reached over a veth pair. No packet leaves the machine.

## Machine

| | |
| --- | --- |
| CPU | ${machine.cpuModel} |
| cores | ${machine.cores} |
| memory | ${machine.memoryGiB.toFixed(1)} GiB |
| kernel | ${machine.kernel} |
| date | ${results.startedAt.toISOString()} |
| vpnns sources | ${results.revision} |
| Node.js start variables | ${results.startVariables.length > 0 ? `${results.startVariables.join(", ")} set: every Node.js start, \`node -e 0\` and vpnns alike, pays for ${results.startVariables.length > 1 ? "them" : "it"} (see Floors)` : "none set"} |

${table(["tool", "version"], results.versions.map(([tool, version]) => [tool, version]))}

## Results and goals

${renderSummaryTable(results, figures)}

A floor is what the same work costs without vpnns: the baseline scripts \`bench/baseline-up.sh\` and \`bench/baseline-down.sh\` run only the unavoidable commands with the same tools, and \`node -e 0\` adds the start of a Node.js process. Every ratio divides medians.

## Cold \`up\` and \`down\`

${count(sizes.lifecycleRepetitions, "repetition")}, each running \`vpnns -v up bench\`, \`vpnns -v down bench\`, \`baseline-up.sh --trace\` and \`baseline-down.sh --trace\` in turn. ${describeBackend(results.lifecycle)} Every \`up\` includes the wait for the first handshake with the lab provider, and the baseline restores the keepalive setting afterwards as vpnns does.

### Steps of \`up\`

Each step lasts from its \`[#]\` line on stderr to the next step's line, as the lines arrive in the benchmark process, and the last step lasts until the exit. The first row covers what runs before the first command: for vpnns, the Node.js start, module loading, the profile lock and the checks for a running or half-made profile.

${renderStepTable(results.lifecycle.vpnnsUp, results.lifecycle.baselineUp)}

### Steps of \`down\`

${renderStepTable(results.lifecycle.vpnnsDown, results.lifecycle.baselineDown)}

### Floors

${renderFloorTable(results)}

## Launch on a profile that is up

${sizes.launchRepetitions} runs of \`vpnns -v run --profile bench -- true\` as root, so no \`setpriv\` is involved.

${renderLaunchSteps(results)}

The memory of a waiting run is read from /proc/PID/status of the vpnns Node.js process one second before its app (\`sleep ${sizes.memorySleepSeconds}\`) ends, over ${count(sizes.memoryRepetitions, "run")}: VmHWM ${formatSummaryWith(summarize(results.memory.peakBytes), formatMegabytes)}, VmRSS at that moment ${formatSummaryWith(summarize(results.memory.residentBytes), formatMegabytes)}. For comparison, a Node.js process that loads nothing (\`node -e 'setTimeout(() => {}, 2000)'\`) has a VmHWM of ${formatSummaryWith(summarize(results.memory.idleNodePeakBytes), formatMegabytes)} after one second.

## Throughput and latency

iperf3 ${sizes.iperf3Seconds} s per run (after ${sizes.iperf3OmitSeconds} s left out with \`-O\`), ${sizes.networkRepetitions} runs per direction and path, and ${sizes.networkRepetitions} ping runs of ${sizes.pingCount} echo requests 50 ms apart. The server is \`iperf3 -s\` in the provider namespace on the tunnel address. The vpnns path is \`vpnns run --profile bench -- iperf3 …\`, with the kill-switch. The bare path is a namespace that \`baseline-up.sh --no-kill-switch\` built with the same tools but no nftables table, reached with \`ip netns exec\`. Both ends of the tunnel are wireguard-go processes on the same 2 cores, so the tunnel's encryption, not the network, limits the rate.

${renderNetworkTable(results)}
${renderOverlapNote(results)}
### Published port

iperf3 as above, with the server inside the profile on 127.0.0.1, and the client in the host namespace on a port that \`vpnns publish bench 15202:5202\` published. For reference, the same server is also reached from inside the namespace through one systemd-socket-proxyd that systemd-socket-activate started, a relay in C, and with no relay at all (the floor). The tunnel is not involved. See [publish.md](publish.md) for the design.

${renderPublishTable(results)}

## Where the time goes

One traced run each of \`vpnns up\`, \`vpnns down\` and \`vpnns run -- true\`: the run with the median total out of ${sizes.timelineRepetitions}, with \`bench/trace-spawns.ts\` preloaded through \`NODE_OPTIONS=--import\`. It prints when Node.js is ready to load the main module and when each child process starts and is reaped. So the rows show every process that vpnns starts, including the queries that \`-v\` does not print, and the time that vpnns spends in its own code between them. These runs are not part of the figures above.

${results.timelines.map(renderTimeline).join("\n\n")}

## Scaling

For each count, \`vpnns -v up\` runs for that many profiles one after another, then \`vpnns status\` runs ${sizes.statusRepetitions === 1 ? "once" : `${sizes.statusRepetitions} times`} with all of them up, then \`vpnns down\` takes each down. The batch of ${smallest} runs ${sizes.scalingSmallestRepetitions === 1 ? "once" : `${sizes.scalingSmallestRepetitions} times`}; the others run once.

${renderScalingTable(results)}

## Notes

- The 1-minute load average at the start of each measurement was: ${loads}. A load near or above the number of cores (${machine.cores}) means that other work, such as test suites in other sandboxes, shared the CPU with this run. That makes single runs vary, and the medians are steadier than the minimum and maximum.
- The vpnns times include \`-v\`, which only adds a write to stderr per command.
${renderDisturbances(results)}`;
}

/**
 * Notes on runs that were discarded and on profiles that `status` found broken. Both happen when
 * another process stops a wireguard-go daemon of this run.
 */
function renderDisturbances(results: BenchResults): string {
  const lines: string[] = [];
  if (results.discarded.length === 0) {
    lines.push("- No run was discarded.");
  } else {
    lines.push(
      `- ${results.discarded.length} runs failed or found their profile broken, so they were left out of the figures and ran again after the profile was rebuilt:`,
    );
    for (const run of results.discarded) lines.push(`  - \`${run.command}\`: ${run.reason}`);
  }
  for (const batch of results.scaling) {
    if (batch.brokenInStatus > 0) {
      lines.push(`- In the batch of ${batch.count}, \`status\` reported up to ${batch.brokenInStatus} profiles as broken; its times are kept.`);
    }
  }
  return lines.join("\n") + "\n";
}

/** "1 run", "3 runs": a count and its noun. */
function count(value: number, noun: string): string {
  return `${value} ${noun}${value === 1 ? "" : "s"}`;
}
