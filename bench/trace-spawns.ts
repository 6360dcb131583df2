/**
 * A preload module (`node --import`) that prints on stderr when the Node.js process is ready to
 * run its main module, when it starts and reaps each child process, and when it exits. Every line
 * carries performance.now(), the milliseconds since the process started. The benchmark loads it
 * into a few extra vpnns runs to show where their time goes, and never into the timed runs.
 *
 *   [bench] ready MS
 *   [bench] spawn MS PID ARGV...
 *   [bench] reaped MS PID
 *   [bench] exit MS
 */
import { ChildProcess } from "node:child_process";
import { performance } from "node:perf_hooks";

function mark(text: string): void {
  process.stderr.write(`[bench] ${text}\n`);
}

/**
 * ChildProcess.prototype.spawn is the internal method behind child_process.spawn() and so behind
 * execa. It is not in Node.js's typings; in Node.js 20 its options carry `file` and `args` (argv).
 */
interface InternalSpawnOptions {
  file: string;
  args?: string[];
}
const prototype = ChildProcess.prototype as unknown as { spawn(this: ChildProcess, options: InternalSpawnOptions): unknown };
const originalSpawn = prototype.spawn;
prototype.spawn = function tracedSpawn(this: ChildProcess, options: InternalSpawnOptions): unknown {
  const startedAt = performance.now();
  const result = originalSpawn.call(this, options);
  const pid = this.pid ?? 0;
  mark(`spawn ${startedAt.toFixed(1)} ${pid} ${(options.args ?? [options.file]).join(" ")}`);
  this.once("exit", () => mark(`reaped ${performance.now().toFixed(1)} ${pid}`));
  return result;
};

process.once("exit", () => mark(`exit ${performance.now().toFixed(1)}`));
mark(`ready ${performance.now().toFixed(1)}`);
