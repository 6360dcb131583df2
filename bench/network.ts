/**
 * Throughput and latency through a profile, against the same lab tunnel in a namespace built by
 * bench/baseline-up.sh without the kill-switch. The iperf3 server runs in the lab's provider
 * namespace on its tunnel address; the clients run through `vpnns run` and `ip netns exec`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { runChecked, type CommandOptions, type CommandResult } from "./commands.js";
import { bringUpAgain, MAIN_PROFILE } from "./lifecycle.js";
import { withRetries, type Context } from "./setup.js";

/** Names used by bench/baseline-up.sh --no-kill-switch for the bare tunnel. */
export const BARE_NAMESPACE = "bench-bare";
export const BARE_INTERFACE = "bnbare";

const IPERF3_PORT = 5201;
const SERVER_READY_TIMEOUT_MS = 10_000;

export interface PathResults {
  /** iperf3 client to server (upload), in bits per second as the receiver counted them. */
  uploadBitsPerSecond: number[];
  /** iperf3 -R, server to client (download), in bits per second as the receiver counted them. */
  downloadBitsPerSecond: number[];
  /** Round-trip times of every echo reply, in milliseconds. */
  pingMs: number[];
}

export interface NetworkResults {
  vpnns: PathResults;
  bare: PathResults;
}

/** A running iperf3 server in the provider namespace. */
export interface Iperf3Server {
  stop(): Promise<void>;
}

/** Starts `iperf3 -s` on the lab's tunnel address and waits until it listens. */
export async function startIperf3Server(context: Context): Promise<Iperf3Server> {
  const { lab } = context;
  const argv = ["ip", "netns", "exec", lab.providerNamespace, "iperf3", "-s", "-B", lab.serviceAddress4, "-p", String(IPERF3_PORT), "--forceflush"];
  // ip netns exec replaces itself with iperf3, so this child is the server itself. --forceflush
  // makes iperf3 print its "Server listening" line at once, although its stdout is a pipe.
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => fail(`printed no "Server listening" within ${SERVER_READY_TIMEOUT_MS} ms`), SERVER_READY_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      output += chunk.toString("utf8");
      if (output.includes("Server listening")) {
        clearTimeout(timer);
        child.off("exit", onExit);
        resolve();
      }
    };
    const onExit = (code: number | null) => fail(`exited with ${code}`);
    function fail(reason: string): void {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`failed to start the iperf3 server (${argv.join(" ")}): it ${reason}; output: ${output.trim()}`));
    }
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", onExit);
    child.once("error", (error) => fail(`could not start: ${error.message}`));
  });
  return { stop: () => stopChild(child) };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** Runs a command inside one of the two namespaces and throws unless it exits with 0. */
type RunInside = (argv: string[], options?: CommandOptions) => Promise<CommandResult>;

/** Runs one iperf3 test; returns bits per second. */
async function runIperf3(context: Context, runInside: RunInside, reverse: boolean): Promise<number> {
  const { lab, sizes } = context;
  const argv = [
    "iperf3", "-c", lab.serviceAddress4, "-p", String(IPERF3_PORT),
    "-t", String(sizes.iperf3Seconds), "-O", String(sizes.iperf3OmitSeconds), "-J",
    ...(reverse ? ["-R"] : []),
  ];
  const result = await runInside(argv, { timeoutMs: (sizes.iperf3Seconds + sizes.iperf3OmitSeconds) * 1000 + 30_000 });
  const report = JSON.parse(result.stdout) as { end?: { sum_received?: { bits_per_second?: number } } };
  const bitsPerSecond = report.end?.sum_received?.bits_per_second;
  if (bitsPerSecond === undefined) throw new Error(`iperf3 printed no end.sum_received.bits_per_second: ${result.stdout.slice(0, 500)}`);
  return bitsPerSecond;
}

/** Runs ping; returns the round-trip time of every reply in milliseconds. */
async function runPing(context: Context, runInside: RunInside): Promise<number[]> {
  const { lab, sizes } = context;
  const result = await runInside(["ping", "-n", "-c", String(sizes.pingCount), "-i", "0.05", "-W", "1", lab.serviceAddress4]);
  const times = [...result.stdout.matchAll(/ time=([\d.]+) ms/g)].map((match) => Number(match[1]));
  if (times.length === 0) throw new Error(`ping printed no replies: ${result.stdout}`);
  return times;
}

/**
 * Measures both paths, alternating between them in every repetition so that a change in the
 * machine's load hits both. The bare namespace must be up.
 */
export async function measureNetwork(context: Context): Promise<NetworkResults> {
  const { vpnns, sizes } = context;
  const runners: Record<"vpnns" | "bare", RunInside> = {
    vpnns: (argv, options) => {
      const run = () => vpnns.measured(["run", "--profile", MAIN_PROFILE, "--", ...argv], options);
      return withRetries(context, `vpnns run --profile ${MAIN_PROFILE} -- ${argv[0]}`, run, () => bringUpAgain(context));
    },
    bare: (argv, options) => runChecked(["ip", "netns", "exec", BARE_NAMESPACE, ...argv], options),
  };
  const results: NetworkResults = {
    vpnns: { uploadBitsPerSecond: [], downloadBitsPerSecond: [], pingMs: [] },
    bare: { uploadBitsPerSecond: [], downloadBitsPerSecond: [], pingMs: [] },
  };
  for (let repetition = 1; repetition <= sizes.networkRepetitions; repetition += 1) {
    for (const path of ["vpnns", "bare"] as const) {
      context.checkAborted();
      context.progress(`throughput and latency (${path}), repetition ${repetition} of ${sizes.networkRepetitions}`);
      results[path].uploadBitsPerSecond.push(await runIperf3(context, runners[path], false));
      results[path].downloadBitsPerSecond.push(await runIperf3(context, runners[path], true));
      results[path].pingMs.push(...(await runPing(context, runners[path])));
    }
  }
  return results;
}
