/**
 * A desktop session seen from inside a profile, against the lab. Covers ping as a normal user,
 * which needs the copied net.ipv4.ping_group_range, and a D-Bus session bus on an abstract socket.
 * It also checks that X11 clients fall back from the abstract socket to the path under
 * /tmp/.X11-unix. The X11 tests start Xvfb (Debian package xvfb) and run xdpyinfo (x11-utils) in
 * a mount namespace with a private /tmp, and are skipped without them. Runs only inside
 * test/sandbox.sh, with the lab from dist/.
 */
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import { chown, copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, test } from "vitest";
import type { Lab } from "../../src/lab/lab.js";
import { CLI, SKIP_REASON, importClient, makeDirs, sandboxed, vpnns, type TestDirs } from "./helpers.js";
import { createTestUser, publicFolder, sudoEnv, type TestUser } from "./app-fixtures.js";

const PROFILE = "session";
const PING_RANGE_FILE = "/proc/sys/net/ipv4/ping_group_range";
/** A range that lets every group open ICMP echo sockets. */
const OPEN_PING_RANGE = "0 2147483647";
/** X11 display number of the test's Xvfb, whose sockets are in a private /tmp. */
const DISPLAY_NUMBER = 57;

async function hasCommand(name: string): Promise<boolean> {
  return (await execa("sh", ["-c", `command -v ${name}`], { reject: false })).exitCode === 0;
}

const hasX11Tools = (await hasCommand("Xvfb")) && (await hasCommand("xdpyinfo"));

if (!sandboxed) test.skip(`desktop session tests skipped: ${SKIP_REASON}`, () => {});
if (sandboxed && !hasX11Tools) test.skip("X11 test skipped: install xvfb and x11-utils", () => {});

/**
 * A node script for inside the namespace: connects to each Unix socket path in argv (a leading
 * "@" names an abstract socket) and prints one JSON object that maps each to "ok" or the error code.
 */
const CONNECT_SCRIPT = `
const net = require("node:net");
const attempt = (path) => new Promise((resolve) => {
  const socket = net.connect(path.startsWith("@") ? "\\0" + path.slice(1) : path);
  socket.on("connect", () => { socket.destroy(); resolve("ok"); });
  socket.on("error", (error) => resolve(error.code));
});
(async () => {
  const results = {};
  for (const path of process.argv.slice(1)) results[path] = await attempt(path);
  process.stdout.write(JSON.stringify(results));
})();
`;

describe.runIf(sandboxed)("desktop sessions", () => {
  let lab: Lab;
  let dirs: TestDirs;
  let user: TestUser;
  let savedRange: string;
  let scratch: string;
  const servers: Server[] = [];

  function runAsUser(command: string[], env: Record<string, string> = {}) {
    return vpnns(dirs, ["run", "--profile", PROFILE, "--", ...command], { env: { ...sudoEnv(user), ...env } });
  }

  function listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = createServer((connection) => connection.end());
      servers.push(server);
      server.once("error", reject);
      server.listen(path, () => resolve());
    });
  }

  beforeAll(async () => {
    // The sandbox's network namespace plays the host, so its value is the one that `up` copies.
    savedRange = (await readFile(PING_RANGE_FILE, "utf8")).trim().replace(/\s+/, " ");
    await writeFile(PING_RANGE_FILE, OPEN_PING_RANGE);

    const labModule = (await import("../../dist/lab/lab.js")) as typeof import("../../src/lab/lab.js");
    lab = await labModule.createLab();
    dirs = await makeDirs("session");
    await importClient(dirs, lab, PROFILE);
    const up = await vpnns(dirs, ["up", PROFILE]);
    if (up.exitCode !== 0) throw new Error(`vpnns up failed: ${up.all}`);
    user = await createTestUser("vpnnssessionuser");
    scratch = await publicFolder(`/run/vpnns/session-scratch-${process.pid}`);
  });

  afterAll(async () => {
    for (const server of servers) server.close();
    if (dirs) await vpnns(dirs, ["down", "--all"]);
    await lab?.destroy();
    if (savedRange !== undefined) await writeFile(PING_RANGE_FILE, savedRange);
  });

  describe("ping", () => {
    let ping: string;

    beforeAll(async () => {
      // A copy loses the file capabilities of /usr/bin/ping (cap_net_raw on Debian), so it can only
      // use the ICMP echo sockets that net.ipv4.ping_group_range allows.
      const folder = await publicFolder(join(scratch, "ping-bin"));
      ping = join(folder, "ping");
      const installed = (await execa("sh", ["-c", "command -v ping"], { reject: false })).stdout.trim();
      if (installed === "") throw new Error("ping not found: install iputils-ping");
      await copyFile(installed, ping);
      await execa("chmod", ["0755", ping]);
    });

    it("namespace gets the host's range", async () => {
      const result = await execa("ip", ["netns", "exec", `vpnns-${PROFILE}`, "cat", PING_RANGE_FILE]);
      expect(result.stdout.trim().split(/\s+/).join(" ")).toBe(OPEN_PING_RANGE);
    });

    it("user can ping through the tunnel", async () => {
      const result = await runAsUser([ping, "-c", "1", "-W", "5", lab.serviceAddress4]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stdout).toContain("1 received");
    });

    it("closed range stops the user's ping", async () => {
      // The control case: with the range a new namespace starts with, the same ping fails.
      await execa("ip", ["netns", "exec", `vpnns-${PROFILE}`, "sysctl", "-q", "-w", "net.ipv4.ping_group_range=1 0"]);
      try {
        const result = await runAsUser([ping, "-c", "1", "-W", "2", lab.serviceAddress4]);
        expect(result.exitCode, result.all).not.toBe(0);
      } finally {
        await execa("ip", ["netns", "exec", `vpnns-${PROFILE}`, "sysctl", "-q", "-w", `net.ipv4.ping_group_range=${OPEN_PING_RANGE}`]);
      }
    });
  });

  describe("D-Bus session bus", () => {
    let runtimeDir: string;
    let abstractName: string;

    beforeAll(async () => {
      runtimeDir = join(scratch, "runtime");
      await mkdir(runtimeDir, { mode: 0o700 });
      await chown(runtimeDir, user.uid, user.gid);
      abstractName = `vpnns-test-bus-${process.pid}`;
      // Stand-ins for a bus daemon that listens on both kinds of socket, in the sandbox's namespace.
      await listen(`\0${abstractName}`);
      await listen(join(runtimeDir, "bus"));
      await execa("chmod", ["0777", join(runtimeDir, "bus")]);
    });

    it("abstract socket is unreachable inside", async () => {
      const result = await runAsUser([process.execPath, "-e", CONNECT_SCRIPT, `@${abstractName}`, join(runtimeDir, "bus")]);
      expect(result.exitCode, result.all).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({ [`@${abstractName}`]: "ECONNREFUSED", [join(runtimeDir, "bus")]: "ok" });
    });

    it("abstract address becomes the path", async () => {
      const result = await runAsUser(["sh", "-c", 'printf %s "$DBUS_SESSION_BUS_ADDRESS"'], {
        DBUS_SESSION_BUS_ADDRESS: `unix:abstract=${abstractName},guid=0123456789abcdef0123456789abcdef`,
        XDG_RUNTIME_DIR: runtimeDir,
      });
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stdout).toBe(`unix:path=${join(runtimeDir, "bus")}`);
      expect(result.stderr).toBe("");
    });

    it("warns without a path socket", async () => {
      const empty = join(scratch, "runtime-empty");
      await mkdir(empty, { mode: 0o700 });
      await chown(empty, user.uid, user.gid);
      const address = `unix:abstract=${abstractName}`;
      const result = await runAsUser(["sh", "-c", 'printf %s "$DBUS_SESSION_BUS_ADDRESS"'], { DBUS_SESSION_BUS_ADDRESS: address, XDG_RUNTIME_DIR: empty });
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stdout).toBe(address);
      expect(result.stderr).toContain(`vpnns: warning: the D-Bus session bus address ${address} uses an abstract Unix socket`);
      expect(result.stderr).toContain("installing dbus-user-session");
    });
  });

  describe.runIf(hasX11Tools)("X11", () => {
    /** A process that keeps a mount namespace with a private /tmp alive, for Xvfb and its clients. */
    let holder: ResultPromise;
    let xvfb: ResultPromise;
    const display = `:${DISPLAY_NUMBER}`;
    const socket = `/tmp/.X11-unix/X${DISPLAY_NUMBER}`;

    /** Run a command in the holder's mount namespace, so that it uses the private /tmp. */
    function inPrivateTmp(command: string[], env: Record<string, string> = {}) {
      return execa("nsenter", [`--target=${holder.pid}`, "--mount", "--", ...command], { reject: false, all: true, env, timeout: 60_000 });
    }

    function runInProfile(command: string[], env: Record<string, string> = {}) {
      return inPrivateTmp([process.execPath, CLI, "run", "--profile", PROFILE, "--", ...command], {
        VPNNS_CONFIG_DIR: dirs.configDir,
        VPNNS_STATE_DIR: dirs.stateDir,
        ...sudoEnv(user),
        ...env,
      });
    }

    beforeAll(async () => {
      // Xvfb writes its sockets to /tmp/.X11-unix and compiled keymaps to /var/lib/xkb, both on the
      // machine's disk in the sandbox, so it runs under tmpfs mounts of a nested mount namespace.
      // A repository cloned under /tmp stays reachable through a bind mount from the old /tmp.
      const mounts = [
        "mkdir -p /run/vpnns-x11-old-tmp",
        "mount --bind /tmp /run/vpnns-x11-old-tmp",
        "mount -t tmpfs -o mode=1777 vpnns-x11-tmp /tmp",
        'case "$REPOSITORY" in /tmp/*) mkdir -p "$REPOSITORY" && mount --bind "/run/vpnns-x11-old-tmp/${REPOSITORY#/tmp/}" "$REPOSITORY";; esac',
        "if [ -d /var/lib/xkb ]; then mount -t tmpfs vpnns-x11-xkb /var/lib/xkb; fi",
      ];
      holder = execa("unshare", ["--mount", "--propagation", "private", "--", "sh", "-c", `${mounts.join(" && ")} && echo mounted && exec sleep 1000000`], {
        reject: false,
        env: { REPOSITORY: fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "") },
      });
      await new Promise<void>((resolve, reject) => {
        holder.stdout!.on("data", (chunk: Buffer) => {
          if (chunk.toString().includes("mounted")) resolve();
        });
        holder.once("exit", (code) => reject(new Error(`the mount namespace holder exited with ${code}`)));
      });
      xvfb = execa("nsenter", [`--target=${holder.pid}`, "--mount", "--", "Xvfb", display, "-nolisten", "tcp", "-ac", "-screen", "0", "640x480x24"], { reject: false, all: true });
      const deadline = Date.now() + 20_000;
      while ((await inPrivateTmp(["test", "-S", socket])).exitCode !== 0) {
        if (xvfb.exitCode !== null) throw new Error(`Xvfb exited with ${xvfb.exitCode}: ${(await xvfb).all}`);
        if (Date.now() > deadline) throw new Error(`Xvfb made no socket ${socket} within 20 s`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    });

    afterAll(async () => {
      xvfb?.kill("SIGTERM");
      await xvfb;
      holder?.kill("SIGTERM");
      await holder;
    });

    it("host side reaches the display", async () => {
      const result = await inPrivateTmp(["xdpyinfo", "-display", display]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stdout).toContain(`name of display:    ${display}`);
    });

    it("app in profile reaches the display", async () => {
      const result = await runInProfile(["xdpyinfo"], { DISPLAY: display });
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stdout).toContain(`name of display:    ${display}`);
      expect(result.stderr).not.toContain("warning");
    });

    it("abstract socket alone is not enough", async () => {
      const moved = `${socket}.moved`;
      await inPrivateTmp(["mv", socket, moved]);
      try {
        const inside = await runInProfile(["xdpyinfo"], { DISPLAY: display });
        expect(inside.exitCode).not.toBe(0);
        expect(inside.stderr).toContain(`vpnns: warning: DISPLAY ${display} has no socket ${socket}`);
        // The host side still connects, through the abstract socket @/tmp/.X11-unix/X57.
        const host = await inPrivateTmp(["xdpyinfo", "-display", display]);
        expect(host.exitCode, host.all).toBe(0);
      } finally {
        await inPrivateTmp(["mv", moved, socket]);
      }
    });
  });

  it("reports no leftover sockets", () => {
    expect(existsSync(`/tmp/.X11-unix/X${DISPLAY_NUMBER}`)).toBe(false);
  });
});
