/**
 * Abuse of published ports: floods and stalled processes that must not make the publish
 * supervisor or forwarder grow without bound. Runs only inside test/sandbox.sh, and imports the
 * lab from dist/ (npm run build first).
 */
import { execa, type ResultPromise } from "execa";
import dgram from "node:dgram";
import { chmod, mkdtemp, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it, test } from "vitest";
import type { Lab } from "../../src/lab/lab.js";
import type { ProfileReport } from "../../src/core/status.js";
import { namespaceName } from "../../src/core/names.js";
import { CLI, importClient, makeDirs, sandboxed, SKIP_REASON, vpnns, waitFor, type TestDirs } from "./helpers.js";

const PROFILE = "brkpub";
/** A profile that is down while an unprivileged user runs an impostor of its supervisor. */
const IMPOSTOR_PROFILE = "brkimp";
/** A profile brought up by a caller that passes an extra file, which the supervisor must not keep. */
const INHERIT_PROFILE = "brkfd";
const SUPERVISOR_SCRIPT = fileURLToPath(new URL("../../dist/publish/supervisor.js", import.meta.url));
const NAMESPACE = namespaceName(PROFILE);
const UDP_INSIDE = 5400;
const UDP_HOST = 15400;
/** Bytes of each flood datagram, near the largest that a frame carries. */
const FLOOD_DATAGRAM = 60_000;
/** Datagrams in a flood: about 360 MB, far more than any bounded buffer may keep. */
const FLOOD_COUNT = 6000;
/** Growth of a process's resident memory, in kB, that a flood may cause at most. */
const MAX_GROWTH_KB = 64 * 1024;

/**
 * A UDP echo service for `node -e` inside the namespace. On the datagram "flood" it replies "ack",
 * waits a second and then sends FLOOD_COUNT datagrams of FLOOD_DATAGRAM bytes to the client. It
 * prints "ready" and exits when stdin closes.
 */
const ECHO_APP = `
const socket = require("node:dgram").createSocket("udp4");
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
const flood = async (client) => {
  const payload = Buffer.alloc(${FLOOD_DATAGRAM}, 0x62);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  for (let sent = 0; sent < ${FLOOD_COUNT}; sent += 10) {
    for (let index = 0; index < 10; index++) socket.send(payload, client.port, client.address);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};
socket.on("message", (message, client) => {
  if (message.toString() !== "flood") return socket.send(message, client.port, client.address);
  socket.send("ack", client.port, client.address);
  void flood(client);
});
socket.bind(Number(process.argv[1]), "127.0.0.1", () => process.stdout.write("ready\\n"));
`;

async function residentKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (match === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

async function statusOf(dirs: TestDirs): Promise<ProfileReport> {
  const result = await vpnns(dirs, ["status", PROFILE, "--json"]);
  if (result.exitCode !== 0) throw new Error(`vpnns status failed: ${result.all}`);
  return JSON.parse(result.stdout) as ProfileReport;
}

if (!sandboxed) test.skip(`breaker publish tests skipped: ${SKIP_REASON}`, () => {});

describe.runIf(sandboxed)("published port abuse", () => {
  let lab: Lab;
  let dirs: TestDirs;
  let echo: ResultPromise | undefined;

  beforeAll(async () => {
    const labModule = (await import("../../dist/lab/lab.js")) as typeof import("../../src/lab/lab.js");
    lab = await labModule.createLab();
    dirs = await makeDirs("breaker-publish");
    await importClient(dirs, lab, PROFILE);
    const up = await vpnns(dirs, ["up", PROFILE]);
    if (up.exitCode !== 0) throw new Error(`vpnns up failed: ${up.all}`);
    echo = execa("ip", ["netns", "exec", NAMESPACE, process.execPath, "-e", ECHO_APP, String(UDP_INSIDE)], { reject: false, stdin: "pipe" });
    let output = "";
    echo.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    await waitFor("the UDP echo service", async () => output.includes("ready\n"));
    const published = await vpnns(dirs, ["publish", PROFILE, `${UDP_HOST}:${UDP_INSIDE}`, "--udp"]);
    if (published.exitCode !== 0) throw new Error(`vpnns publish failed: ${published.all}`);
  });

  afterAll(async () => {
    echo?.stdin?.end();
    echo?.kill("SIGTERM");
    await echo;
    if (dirs) await vpnns(dirs, ["down", "--all"]);
    await lab?.destroy();
  });

  it("bounds supervisor memory under a UDP flood", async () => {
    const report = await statusOf(dirs);
    const supervisorPid = report.publishing.supervisorPid;
    const forwarderPid = report.publishing.forwarderPid;
    expect(supervisorPid, JSON.stringify(report.publishing)).toBeTypeOf("number");
    expect(forwarderPid, JSON.stringify(report.publishing)).toBeTypeOf("number");

    const socket = dgram.createSocket("udp4");
    const replies: Buffer[] = [];
    socket.on("message", (message) => replies.push(message));
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
    try {
      // One echoed datagram opens the session, so later datagrams go straight to its stream.
      socket.send("hello", UDP_HOST, "127.0.0.1");
      await waitFor("the first echo", async () => replies.length > 0);

      // A stalled forwarder reads nothing, as under heavy load or when a process of the same
      // user stops it.
      process.kill(forwarderPid!, "SIGSTOP");
      const before = await residentKb(supervisorPid!);
      const payload = Buffer.alloc(FLOOD_DATAGRAM, 0x61);
      for (let sent = 0; sent < FLOOD_COUNT; sent += 10) {
        for (let index = 0; index < 10; index++) socket.send(payload, UDP_HOST, "127.0.0.1");
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      const after = await residentKb(supervisorPid!);
      process.kill(forwarderPid!, "SIGCONT");

      expect(after - before, `supervisor VmRSS grew from ${before} kB to ${after} kB`).toBeLessThan(MAX_GROWTH_KB);

      // The port still works once the forwarder runs again.
      replies.length = 0;
      const probe = (): void => void socket.send("again", UDP_HOST, "127.0.0.1");
      probe();
      await waitFor("an echo after the flood", async () => {
        if (replies.some((reply) => reply.toString() === "again")) return true;
        probe();
        await new Promise((resolve) => setTimeout(resolve, 200));
        return false;
      }, 60_000);
    } finally {
      socket.close();
    }
  }, 120_000);

  it("bounds forwarder memory under a flood of replies", async () => {
    const report = await statusOf(dirs);
    const supervisorPid = report.publishing.supervisorPid;
    const forwarderPid = report.publishing.forwarderPid;
    expect(supervisorPid, JSON.stringify(report.publishing)).toBeTypeOf("number");
    expect(forwarderPid, JSON.stringify(report.publishing)).toBeTypeOf("number");

    const socket = dgram.createSocket("udp4");
    const replies: Buffer[] = [];
    socket.on("message", (message) => replies.push(message));
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
    try {
      socket.send("flood", UDP_HOST, "127.0.0.1");
      await waitFor("the flood's ack", async () => replies.some((reply) => reply.toString() === "ack"));
      // A stalled supervisor reads nothing from the forwarder while the service floods replies.
      process.kill(supervisorPid!, "SIGSTOP");
      const before = await residentKb(forwarderPid!);
      await new Promise((resolve) => setTimeout(resolve, 1000 + FLOOD_COUNT / 2));
      const after = await residentKb(forwarderPid!);
      process.kill(supervisorPid!, "SIGCONT");

      expect(after - before, `forwarder VmRSS grew from ${before} kB to ${after} kB`).toBeLessThan(MAX_GROWTH_KB);
    } finally {
      socket.close();
    }
  }, 120_000);

  it("ignores a supervisor impostor of another user", async () => {
    await importClient(dirs, lab, IMPOSTOR_PROFILE);
    const published = await vpnns(dirs, ["publish", IMPOSTOR_PROFILE, "15401:5401"]);
    expect(published.exitCode, published.all).toBe(0);

    // The user "nobody" starts a process whose command line is that of the profile's supervisor:
    // the real script, with a preload from NODE_OPTIONS, which no command line shows, that blocks
    // before the script runs.
    const preload = join(await mkdtemp("/tmp/vpnns-impostor-"), "block.cjs");
    await writeFile(preload, "Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);\n", { mode: 0o644 });
    await chmod(dirname(preload), 0o755);
    const impostor = execa(
      "setpriv",
      ["--reuid=65534", "--regid=65534", "--clear-groups", "--", process.execPath, SUPERVISOR_SCRIPT, "--profile", IMPOSTOR_PROFILE, "--state-dir", dirs.stateDir],
      { reject: false, env: { NODE_OPTIONS: `--require=${preload}` } },
    );
    try {
      await waitFor("the impostor's command line", async () => {
        const argv = await readFile(`/proc/${impostor.pid}/cmdline`, "utf8").catch(() => "");
        return argv.includes(SUPERVISOR_SCRIPT);
      });

      const up = await vpnns(dirs, ["up", IMPOSTOR_PROFILE]);
      expect(up.exitCode, up.all).toBe(0);
      const report = (await vpnns(dirs, ["status", IMPOSTOR_PROFILE, "--json"])).stdout;
      const publishing = (JSON.parse(report) as ProfileReport).publishing;
      expect(publishing.supervisorPid).not.toBe(impostor.pid);
      expect(publishing.ports.map((port) => port.listening)).toEqual([true]);
    } finally {
      impostor.kill("SIGKILL");
      await impostor;
      await vpnns(dirs, ["down", IMPOSTOR_PROFILE]);
      await rm(dirname(preload), { recursive: true, force: true });
    }
  }, 120_000);

  it("keeps no file of the caller of up", async () => {
    await importClient(dirs, lab, INHERIT_PROFILE);
    const published = await vpnns(dirs, ["publish", INHERIT_PROFILE, "15402:5402"]);
    expect(published.exitCode, published.all).toBe(0);

    // vpnns gets fd 300 without close-on-exec, as a shell's `300>` or a build tool's job server
    // passes it. Node.js drops low extra descriptors of its children, so a high one is used.
    const marker = join(await mkdtemp("/tmp/vpnns-inherit-"), "marker");
    const up = await execa("bash", ["-c", 'exec 300>>"$1" && shift && exec "$@"', "bash", marker, process.execPath, CLI, "up", INHERIT_PROFILE], {
      reject: false,
      all: true,
      env: { VPNNS_CONFIG_DIR: dirs.configDir, VPNNS_STATE_DIR: dirs.stateDir },
    });
    try {
      expect(up.exitCode, up.all).toBe(0);
      const holders: string[] = [];
      for (const entry of await readdir("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        const argv = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
        if (!/\/publish\/(supervisor|forwarder)\.js\0/.test(argv)) continue;
        const descriptors = await readdir(`/proc/${entry}/fd`).catch(() => [] as string[]);
        for (const descriptor of descriptors) {
          const target = await readlink(`/proc/${entry}/fd/${descriptor}`).catch(() => "");
          if (target === marker) holders.push(`${entry} ${argv.split("\0").join(" ")} (fd ${descriptor})`);
        }
      }
      expect(holders).toEqual([]);
    } finally {
      await vpnns(dirs, ["down", INHERIT_PROFILE]);
      await rm(dirname(marker), { recursive: true, force: true });
    }
  }, 120_000);
});
