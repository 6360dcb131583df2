/**
 * The per-step breakdown of a timed run, read from the "[#] command" lines on its stderr: the
 * lines that `vpnns -v` prints just before each state-changing command, and that the baseline
 * scripts print with --trace. A step lasts from its first line to the first line of the next
 * step, and the last step lasts until the process exits.
 */
import type { CommandResult } from "./commands.js";
import { summarize } from "./stats.js";

/** The step before the first "[#]" line: process start, module loading, locks and checks. */
export const START_STEP = "start until the first command";

const STEP_RULES: { pattern: RegExp; step: string }[] = [
  { pattern: /^ip netns add /, step: "namespace: ip netns add" },
  { pattern: /^ip -n \S+ link set dev lo up$/, step: "namespace: loopback up" },
  { pattern: /^ip netns exec \S+ sysctl /, step: "namespace: sysctl" },
  { pattern: / nft -f -$/, step: "kill-switch: nft -f" },
  { pattern: /^ip link add dev \S+ type wireguard$/, step: "link: kernel WireGuard, failed" },
  { pattern: /^wireguard-go /, step: "link: wireguard-go" },
  { pattern: /^wg setconf /, step: "configure: wg setconf" },
  { pattern: /^ip link set dev \S+ netns /, step: "move the link into the namespace" },
  { pattern: /^ip -n \S+ (-batch|address add|link set dev|route replace) /, step: "addresses, MTU, routes: ip -batch" },
  { pattern: /^(write|mkdir -p) \/etc\/netns\//, step: "DNS files" },
  { pattern: /^mount --bind /, step: "app mounts: private bind mount" },
  { pattern: /^taskset \S+ \S+ unshare --mount=/, step: "app mounts: mount namespace and mount --all" },
  { pattern: /^nsenter( \S+)+ -- mount --all /, step: "app mounts: mount --all" },
  { pattern: /persistent-keepalive 25$/, step: "handshake: keepalive on, poll" },
  { pattern: /persistent-keepalive off$/, step: "keepalive off, until exit" },
  { pattern: /^ip -n \S+ link delete /, step: "delete the link" },
  { pattern: /^ip netns delete /, step: "ip netns delete" },
  { pattern: /^ip link delete /, step: "delete a link left in the host namespace" },
  { pattern: /^rm -rf \/etc\/netns\//, step: "remove DNS files, until exit" },
  { pattern: /^wait for /, step: "wait for wireguard-go to exit" },
  { pattern: /^ip netns exec \S+ (setpriv |true$)/, step: "app: ip netns exec, until exit" },
  { pattern: /^nsenter --net=\S+ --mount=\S+ --wdns=\S+ -- (setpriv |true$)/, step: "app: nsenter, until exit" },
  { pattern: /^umount /, step: "unmount the app mounts" },
];

function stepOf(command: string): string {
  return STEP_RULES.find((rule) => rule.pattern.test(command))?.step ?? `other: ${command}`;
}

/** Splits one run into its steps with their durations in milliseconds, in the order they ran. */
export function splitSteps(result: CommandResult): { step: string; ms: number }[] {
  const marks: { step: string; atMs: number }[] = [{ step: START_STEP, atMs: 0 }];
  for (const line of result.stderrLines) {
    if (!line.text.startsWith("[#] ")) continue;
    const step = stepOf(line.text.slice(4));
    if (marks[marks.length - 1]!.step !== step) marks.push({ step, atMs: line.atMs });
  }
  return marks.map((mark, index) => ({ step: mark.step, ms: (marks[index + 1]?.atMs ?? result.elapsedMs) - mark.atMs }));
}

export interface StepSummary {
  step: string;
  /** Median over all runs; a run without the step counts as 0 ms. */
  medianMs: number;
}

/** Summarizes the steps of several runs, in the order of their first appearance. */
export function summarizeSteps(results: readonly CommandResult[]): StepSummary[] {
  const samples = new Map<string, number[]>();
  const perRun = results.map(splitSteps);
  for (const steps of perRun) for (const { step } of steps) samples.set(step, []);
  for (const steps of perRun) {
    for (const step of samples.keys()) {
      samples.get(step)!.push(steps.filter((entry) => entry.step === step).reduce((sum, entry) => sum + entry.ms, 0));
    }
  }
  return [...samples].map(([step, values]) => ({ step, medianMs: summarize(values).median }));
}
