/**
 * Runs a command in a sandbox: `node dist/lab/sandbox-run.js COMMAND [ARGS...]`, itself started
 * under SANDBOX_COMMAND_PREFIX (test/sandbox.sh does both). It prepares the sandbox, runs the
 * command with inherited stdio and VPNNS_SANDBOX=1, stops the processes the command left behind in
 * the sandbox's network namespaces, and exits with the command's exit code.
 */
import { spawn } from "node:child_process";
import { readdir } from "node:fs/promises";
import { constants } from "node:os";
import { EXIT_FAILURE, EXIT_USAGE } from "../core/errors.js";
import { warn } from "../core/log.js";
import { listProcesses, namespaceKey, terminateProcesses } from "./processes.js";
import { parentPid, prepareSandbox, SANDBOX_ENV } from "./sandbox.js";

/** Exit status of a shell for a command it cannot find, used when the command does not start. */
const EXIT_NOT_STARTED = 127;

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Returns this process's pid and those of its ancestors, which may share its network namespace. */
async function ownLineage(): Promise<Set<number>> {
  const lineage = new Set<number>([process.pid]);
  let pid: number | undefined = process.ppid;
  while (pid !== undefined && pid > 1 && !lineage.has(pid)) {
    lineage.add(pid);
    pid = await parentPid(pid);
  }
  return lineage;
}

/**
 * Stops processes still running in the sandbox's own network namespace or in one made inside it
 * (listed under /run/netns), such as wireguard-go daemons. They would otherwise outlive the sandbox
 * and keep its namespaces alive. Namespaces made inside but no longer under /run/netns are missed.
 */
async function stopLeftoverProcesses(): Promise<void> {
  const ownNamespace = await namespaceKey("/proc/self/ns/net");
  const madeNamespaces = new Map<string, string>();
  for (const name of await readdir("/run/netns").catch(() => [] as string[])) {
    const key = await namespaceKey(`/run/netns/${name}`);
    if (key !== undefined) madeNamespaces.set(key, name);
  }

  const lineage = await ownLineage();
  const leftovers = (await listProcesses()).filter(
    (entry) => (entry.namespace === ownNamespace && !lineage.has(entry.pid)) || madeNamespaces.has(entry.namespace),
  );
  for (const entry of leftovers) {
    const where = madeNamespaces.get(entry.namespace) ?? "of the sandbox itself";
    warn(`sandbox: stopping leftover process ${entry.pid} (${entry.name}) in network namespace ${where}`);
  }
  await terminateProcesses(leftovers.map((entry) => entry.pid));
}

function runCommand(command: string, args: string[]): Promise<number> {
  const child = spawn(command, args, { stdio: "inherit", env: { ...process.env, [SANDBOX_ENV]: "1" } });
  // The terminal sends SIGINT to the whole foreground process group, the command included, so this
  // process ignores it and keeps running to clean up. Other signals are passed on.
  process.on("SIGINT", () => {});
  for (const signal of ["SIGTERM", "SIGHUP"] as const) process.on(signal, () => child.kill(signal));

  return new Promise((resolve) => {
    child.once("error", (error) => {
      warn(`sandbox: failed to start ${command}: ${error.message}`);
      resolve(EXIT_NOT_STARTED);
    });
    child.once("exit", (code, signal) => {
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined) {
    process.stderr.write("usage: node dist/lab/sandbox-run.js COMMAND [ARGS...]\n");
    return EXIT_USAGE;
  }
  try {
    await prepareSandbox();
  } catch (error) {
    process.stderr.write(`vpnns: error: sandbox: failed to prepare: ${errorMessage(error)}\n`);
    return EXIT_FAILURE;
  }

  const status = await runCommand(command, args);
  try {
    await stopLeftoverProcesses();
  } catch (error) {
    warn(`sandbox: failed to stop leftover processes: ${errorMessage(error)}`);
    return status === 0 ? EXIT_FAILURE : status;
  }
  return status;
}

process.exitCode = await main(process.argv.slice(2));
