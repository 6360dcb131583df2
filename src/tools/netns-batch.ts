/**
 * Commands inside many network namespaces, started by a few `ip -force -batch -` processes instead
 * of one `ip netns exec` process each from Node.js. Each batch line `netns exec NS COMMAND...` makes
 * ip fork, enter NS as `ip netns exec` does, and run the command, one line after another. Between
 * two commands, the line `link show dev lo` prints the host namespace's loopback as one JSON line,
 * which marks where one command's stdout ends and the next one's begins.
 *
 * iproute2 6.1.0 has a flaw here: when a forked child cannot enter its namespace (the namespace was
 * deleted after vpnns looked), that child goes on with the rest of the batch and then ip runs the
 * rest again. The outputs then contain more separators than lines, so parseBatchOutput rejects
 * them, and runInNamespaces runs those commands one `ip netns exec` at a time instead.
 */
import { availableParallelism } from "node:os";
import { run } from "./exec.js";
import { netnsExec } from "./ip.js";

export interface NamespaceCommand {
  namespace: string;
  /** The program and its arguments, run inside the namespace with its /etc/netns files applied. */
  argv: readonly string[];
}

export interface NamespaceCommandResult {
  stdout: string;
  /** Whether the command exited with a status other than 0, or could not enter the namespace. */
  failed: boolean;
}

/** The ip batch command whose output separates the outputs of two commands. */
const SEPARATOR_COMMAND = "link show dev lo";

/** Maximum number of `ip netns exec` processes at once when a batch's output could not be split. */
const SINGLE_CONCURRENCY = 8;

/**
 * Batches per CPU. The commands of a batch run one after another, and each spends part of its
 * time starting up, so two batches per CPU keep the CPUs busier. Over 50 namespaces on a 2-core
 * VM under load, the batches took 268 ms as 2 batches and 238 ms as 4 (medians of 5).
 */
const BATCHES_PER_CPU = 2;

/**
 * ip splits a batch line at blanks, reads quotes and backslashes, and ignores everything after
 * "#". Names of namespaces and interfaces and the fixed arguments that vpnns passes contain none of
 * these, and a word with one of them is rejected, so a line always means the intended argv.
 */
const SAFE_WORD = /^[A-Za-z0-9_.:=+,/@%-]+$/;

/**
 * Run each command inside its namespace and return the results in the order given. The commands
 * run in up to BATCHES_PER_CPU batches per CPU at once. They must only read, because the commands
 * of a batch whose output cannot be split run again one by one.
 */
export async function runInNamespaces(commands: readonly NamespaceCommand[], options: { intent: string }): Promise<NamespaceCommandResult[]> {
  for (const { namespace, argv } of commands) {
    const unsafe = [namespace, ...argv].find((word) => !SAFE_WORD.test(word));
    if (unsafe !== undefined) {
      throw new Error(`invalid word ${JSON.stringify(unsafe)} for an ip batch line: it may contain only letters, digits and _.:=+,/@%-`);
    }
  }
  const shardCount = Math.min(BATCHES_PER_CPU * availableParallelism(), commands.length);
  const shardSize = Math.ceil(commands.length / Math.max(shardCount, 1));
  const shards: NamespaceCommand[][] = [];
  for (let start = 0; start < commands.length; start += shardSize) shards.push(commands.slice(start, start + shardSize));
  const results = await Promise.all(shards.map((shard) => runShard(shard, options.intent)));
  return results.flat();
}

async function runShard(commands: readonly NamespaceCommand[], intent: string): Promise<NamespaceCommandResult[]> {
  const input = commands.map(({ namespace, argv }) => `${SEPARATOR_COMMAND}\nnetns exec ${namespace} ${argv.join(" ")}\n`).join("");
  const result = await run(["ip", "-json", "-force", "-batch", "-"], { intent, input, allowFailure: true });
  // With -force, ip exits with 1 when any line failed, which the failing commands here often do.
  const parsed = result.exitCode <= 1 ? parseBatchOutput(result.stdout, result.stderr, commands.length) : undefined;
  return parsed ?? runEach(commands, intent);
}

/**
 * Split the stdout of a batch of `count` commands, each after a separator line, into the output of
 * each command, and mark the commands that ip reports as failed on stderr ("Command failed -:LINE").
 * Returns undefined when the output does not have exactly that form.
 */
export function parseBatchOutput(stdout: string, stderr: string, count: number): NamespaceCommandResult[] | undefined {
  const firstLineEnd = stdout.indexOf("\n");
  if (firstLineEnd < 0) return undefined;
  const separator = stdout.slice(0, firstLineEnd + 1);
  if (!isLoopbackListing(separator)) return undefined;
  const parts = stdout.split(separator);
  // The text before the first separator is empty, so there is one part more than commands.
  if (parts.length !== count + 1 || parts[0] !== "") return undefined;

  const failedLines = new Set<number>();
  for (const match of stderr.matchAll(/^Command failed -:(\d+)$/gm)) {
    const line = Number(match[1]);
    // Command k (from 0) is on line 2k + 2, after its separator. A failed separator line, or a
    // line that fails twice, means that the output is not the one this function expects.
    if (failedLines.has(line) || line % 2 !== 0 || line < 2 || line > 2 * count) return undefined;
    failedLines.add(line);
  }
  return parts.slice(1).map((stdout, index) => ({ stdout, failed: failedLines.has(2 * index + 2) }));
}

function isLoopbackListing(line: string): boolean {
  try {
    const links = JSON.parse(line) as { ifname?: string }[];
    return Array.isArray(links) && links.length === 1 && links[0]?.ifname === "lo";
  } catch {
    return false;
  }
}

/** Run each command in a process of its own, at most SINGLE_CONCURRENCY at once. */
async function runEach(commands: readonly NamespaceCommand[], intent: string): Promise<NamespaceCommandResult[]> {
  const results: NamespaceCommandResult[] = new Array(commands.length);
  let next = 0;
  const worker = async () => {
    while (next < commands.length) {
      const index = next++;
      const { namespace, argv } = commands[index]!;
      const result = await run([...netnsExec(namespace), ...argv], { intent, allowFailure: true });
      results[index] = { stdout: result.stdout, failed: result.failed };
    }
  };
  await Promise.all(Array.from({ length: Math.min(SINGLE_CONCURRENCY, commands.length) }, worker));
  return results;
}
