/**
 * Throughput of a published port: iperf3 from the host namespace to an iperf3 server inside the
 * main profile, through `vpnns publish`. For comparison, the same server is reached from inside
 * the namespace directly (the floor) and through one systemd-socket-proxyd inside the namespace,
 * a relay in C with splice(2). A chain of two systemd-socket-proxyd processes that meet on a Unix
 * socket, the design of `vpnns publish` built from systemd's tool, is not measured, because with
 * systemd 252 the proxy that connects to the Unix socket exited during its first iperf3 run.
 * The main profile must be up.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { runChecked, type CommandResult } from "./commands.js";
import { MAIN_PROFILE } from "./lifecycle.js";
import type { Context } from "./setup.js";

const NAMESPACE = `vpnns-${MAIN_PROFILE}`;
const SERVER_PORT = 5202;
const PUBLISHED_PORT = 15202;
const PROXYD_PORT = 15203;
const PROXYD_CANDIDATES = ["/usr/lib/systemd/systemd-socket-proxyd", "/lib/systemd/systemd-socket-proxyd"];
const READY_TIMEOUT_MS = 10_000;

export interface ThroughputSamples {
  /** Host to the service inside, in bits per second as the receiver counted them. */
  uploadBitsPerSecond: number[];
  /** The service inside to the host (`iperf3 -R`). */
  downloadBitsPerSecond: number[];
}

export interface PublishResults {
  published: ThroughputSamples;
  /** One systemd-socket-proxyd inside the namespace; undefined when it or systemd-socket-activate is not installed. */
  socketProxyd: ThroughputSamples | undefined;
  inside: ThroughputSamples;
}

/** Starts a long-running command and resolves once a line of its output contains `readyText`, or at once without one. */
async function startProcess(argv: string[], readyText: string | undefined): Promise<ChildProcess> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  if (readyText === undefined) return child;
  await new Promise<void>((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`${argv.join(" ")} printed no "${readyText}" within ${READY_TIMEOUT_MS} ms: ${output}`)), READY_TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes(readyText)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${argv.join(" ")} exited with ${code}: ${output}`));
    });
  });
  return child;
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

async function iperf3(context: Context, prefix: string[], port: number, reverse: boolean): Promise<number> {
  const { sizes } = context;
  const argv = [...prefix, "iperf3", "-c", "127.0.0.1", "-p", String(port), "-t", String(sizes.iperf3Seconds), "-O", String(sizes.iperf3OmitSeconds), "-J"];
  if (reverse) argv.push("-R");
  const result: CommandResult = await runChecked(argv, { timeoutMs: (sizes.iperf3Seconds + sizes.iperf3OmitSeconds) * 1000 + 30_000 });
  const report = JSON.parse(result.stdout) as { end?: { sum_received?: { bits_per_second?: number } } };
  const bitsPerSecond = report.end?.sum_received?.bits_per_second;
  if (bitsPerSecond === undefined) throw new Error(`${argv.join(" ")} printed no end.sum_received.bits_per_second: ${result.stdout.slice(0, 500)}`);
  return bitsPerSecond;
}

/** Measures the three paths, alternating between them in every repetition so that a change in load hits all. */
export async function measurePublish(context: Context): Promise<PublishResults> {
  const { vpnns, sizes } = context;
  const children: ChildProcess[] = [];
  const proxyd = PROXYD_CANDIDATES.find((path) => existsSync(path));
  const hasActivate = existsSync("/usr/bin/systemd-socket-activate");
  try {
    children.push(await startProcess(["ip", "netns", "exec", NAMESPACE, "iperf3", "-s", "-B", "127.0.0.1", "-p", String(SERVER_PORT), "--forceflush"], "Server listening"));
    await vpnns.checked(["publish", MAIN_PROFILE, `${PUBLISHED_PORT}:${SERVER_PORT}`]);
    if (proxyd !== undefined && hasActivate) {
      const argv = ["ip", "netns", "exec", NAMESPACE, "systemd-socket-activate", "-l", `127.0.0.1:${PROXYD_PORT}`, proxyd, `127.0.0.1:${SERVER_PORT}`];
      children.push(await startProcess(argv, "Listening on"));
    }

    const empty = (): ThroughputSamples => ({ uploadBitsPerSecond: [], downloadBitsPerSecond: [] });
    const results: PublishResults = { published: empty(), socketProxyd: proxyd && hasActivate ? empty() : undefined, inside: empty() };
    const paths: [ThroughputSamples | undefined, string[], number][] = [
      [results.published, [], PUBLISHED_PORT],
      [results.socketProxyd, ["ip", "netns", "exec", NAMESPACE], PROXYD_PORT],
      [results.inside, ["ip", "netns", "exec", NAMESPACE], SERVER_PORT],
    ];
    for (let repetition = 1; repetition <= sizes.networkRepetitions; repetition += 1) {
      context.checkAborted();
      context.progress(`published port throughput, repetition ${repetition} of ${sizes.networkRepetitions}`);
      for (const [samples, prefix, port] of paths) {
        if (samples === undefined) continue;
        samples.uploadBitsPerSecond.push(await iperf3(context, prefix, port, false));
        samples.downloadBitsPerSecond.push(await iperf3(context, prefix, port, true));
      }
    }
    return results;
  } finally {
    await vpnns.run(["unpublish", MAIN_PROFILE, String(PUBLISHED_PORT)]);
    for (const child of children.reverse()) await stop(child);
  }
}
