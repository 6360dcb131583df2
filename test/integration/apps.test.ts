/**
 * Per-app profiles and single-instance apps end to end, against the lab: `vpnns app`, `vpnns
 * profile default`, how `vpnns run` chooses a profile, the apps in `vpnns status`, the hand-off
 * warning, and the separate data folder of known apps. Single-instance apps are played by the
 * stand-in in test/fixtures/single-instance-app. Runs only inside test/sandbox.sh, and imports
 * the lab from dist/ (npm run build first).
 */
import { execa, type ResultPromise } from "execa";
import { chown, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, test } from "vitest";
import type { Lab } from "../../src/lab/lab.js";
import type { ProfileReport } from "../../src/core/status.js";
import { CLI, SKIP_REASON, importClient, makeDirs, sandboxed, vpnns, type TestDirs } from "./helpers.js";
import { createTestUser, installInstanceApp, publicFolder, sudoEnv, type TestUser } from "./app-fixtures.js";

/** Milliseconds to wait for the stand-in to print "instance ready". */
const READY_TIMEOUT_MS = 20_000;

if (!sandboxed) test.skip(`app tests skipped: ${SKIP_REASON}`, () => {});

/** Wait until a process prints a line that starts with the prefix; rejects when it exits first. */
function waitForLine(subprocess: ResultPromise, prefix: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`no line starting with "${prefix}" within ${READY_TIMEOUT_MS} ms; output: ${output}`)), READY_TIMEOUT_MS);
    subprocess.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const line = output.split("\n").find((candidate) => candidate.startsWith(prefix));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    subprocess.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before printing "${prefix}"; output: ${output}`));
    });
  });
}

describe.runIf(sandboxed)("per-app profiles", () => {
  let lab: Lab;
  let dirs: TestDirs;
  let user: TestUser;
  let bin: string;
  /** A folder below which each test gets socket folders that the test user owns. */
  let scratch: string;
  let folderCount = 0;
  const background: ResultPromise[] = [];

  /** Create a folder owned by the test user. */
  async function userFolder(): Promise<string> {
    const folder = join(scratch, `folder-${folderCount++}`);
    await mkdir(folder, { mode: 0o700 });
    await chown(folder, user.uid, user.gid);
    return folder;
  }

  /** Run vpnns as if the test user had started it through sudo, with the stand-ins on PATH. */
  function vpnnsAsUser(args: string[], env: Record<string, string> = {}) {
    return vpnns(dirs, args, { env: { ...sudoEnv(user), PATH: `${bin}:${process.env.PATH}`, ...env } });
  }

  /**
   * Start the stand-in as the test user in the sandbox's own network namespace, outside every
   * profile. The process is wrapped in an object, because an async function that returned it
   * would wait for it to end: execa's subprocess is also a promise of its result.
   */
  async function startOutside(name: string, env: Record<string, string>): Promise<{ instance: ResultPromise }> {
    const subprocess = execa("setpriv", [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "--", join(bin, name)], {
      env: { HOME: user.home, PATH: process.env.PATH ?? "", ...env },
      extendEnv: false,
      reject: false,
    });
    background.push(subprocess);
    await waitForLine(subprocess, "instance ready");
    return { instance: subprocess };
  }

  async function status(profile: string): Promise<ProfileReport> {
    const result = await vpnns(dirs, ["status", profile, "--json"]);
    if (result.exitCode !== 0) throw new Error(`vpnns status ${profile} failed: ${result.all}`);
    return JSON.parse(result.stdout) as ProfileReport;
  }

  async function namespaceOfRun(args: string[]): Promise<string> {
    const result = await vpnns(dirs, ["run", "--as-root", ...args]);
    if (result.exitCode !== 0) throw new Error(`vpnns run ${args.join(" ")} failed: ${result.all}`);
    return result.stdout.trim();
  }

  beforeAll(async () => {
    const labModule = (await import("../../dist/lab/lab.js")) as typeof import("../../src/lab/lab.js");
    lab = await labModule.createLab();
    dirs = await makeDirs("apps");
    for (const profile of ["apps-a", "apps-b"]) {
      await importClient(dirs, lab, profile);
      const up = await vpnns(dirs, ["up", profile]);
      if (up.exitCode !== 0) throw new Error(`vpnns up ${profile} failed: ${up.all}`);
    }
    user = await createTestUser("vpnnsappuser");
    bin = await publicFolder(`/run/vpnns/apps-bin-${process.pid}`);
    await installInstanceApp(bin, "instance-app");
    await installInstanceApp(bin, "firefox");
    scratch = await publicFolder(`/run/vpnns/apps-scratch-${process.pid}`);
  });

  afterAll(async () => {
    for (const subprocess of background) subprocess.kill("SIGTERM");
    await Promise.all(background);
    if (dirs) await vpnns(dirs, ["down", "--all"]);
    await lab?.destroy();
  });

  describe("assignments", () => {
    it("app list creates no file", async () => {
      const fresh = await makeDirs("apps-fresh");
      const result = await vpnns(fresh, ["app", "list", "--json"]);
      expect(result.exitCode, result.all).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({ apps: [], defaultProfile: null });
      expect(existsSync(fresh.configDir)).toBe(false);
    });

    it("app set stores with private modes", async () => {
      const result = await vpnns(dirs, ["app", "set", "ip", "apps-b"]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stderr).toContain("ip runs in profile apps-b");
      const file = join(dirs.configDir, "apps.json");
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect((await stat(dirs.configDir)).mode & 0o777).toBe(0o700);
      expect(JSON.parse(await readFile(file, "utf8"))).toEqual({ apps: { ip: "apps-b" } });
    });

    it("app list shows assignments", async () => {
      const result = await vpnns(dirs, ["app", "list", "--json"]);
      expect(JSON.parse(result.stdout)).toEqual({ apps: [{ app: "ip", profile: "apps-b", profileExists: true }], defaultProfile: null });
      const text = await vpnns(dirs, ["app", "list"]);
      expect(text.stdout).toBe("ip\tapps-b");
      expect(text.stderr).toContain("no default profile");
    });

    it("app set rejects a missing profile", async () => {
      const result = await vpnns(dirs, ["app", "set", "curl", "nosuchprofile"]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain("profile nosuchprofile not found; known profiles: apps-a, apps-b");
    });

    it("app set rejects a path", async () => {
      const result = await vpnns(dirs, ["app", "set", "/usr/bin/curl", "apps-a"]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain('invalid app name "/usr/bin/curl"');
    });

    it("run uses the app's profile", async () => {
      expect(await namespaceOfRun(["--", "ip", "netns", "identify"])).toBe("vpnns-apps-b");
      const ipPath = (await execa("sh", ["-c", "command -v ip"])).stdout.trim();
      expect(await namespaceOfRun(["--", ipPath, "netns", "identify"])).toBe("vpnns-apps-b");
    });

    it("--profile wins over the app's profile", async () => {
      expect(await namespaceOfRun(["--profile", "apps-a", "--", "ip", "netns", "identify"])).toBe("vpnns-apps-a");
    });

    it("run without a choice fails", async () => {
      const result = await vpnns(dirs, ["run", "--as-root", "--", "sh", "-c", "true"]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain("no profile given for sh; stored profiles: apps-a, apps-b");
      expect(result.stderr).toContain("--profile NAME");
      expect(result.stderr).toContain("'vpnns app set sh NAME'");
      expect(result.stderr).toContain("'vpnns profile default NAME'");
    });

    it("profile default sets and shows", async () => {
      const set = await vpnns(dirs, ["profile", "default", "apps-a"]);
      expect(set.exitCode, set.all).toBe(0);
      const show = await vpnns(dirs, ["profile", "default"]);
      expect(show.stdout).toBe("apps-a");
      expect(await namespaceOfRun(["--", "sh", "-c", "ip netns identify"])).toBe("vpnns-apps-a");
    });

    it("app unset falls back to default", async () => {
      const unset = await vpnns(dirs, ["app", "unset", "ip"]);
      expect(unset.stderr).toContain("ip no longer runs in profile apps-b");
      expect(await namespaceOfRun(["--", "ip", "netns", "identify"])).toBe("vpnns-apps-a");
      const again = await vpnns(dirs, ["app", "unset", "ip"]);
      expect(again.exitCode).toBe(0);
      expect(again.stderr).toContain("ip had no profile; nothing changed");
    });

    it("profile default rejects a missing profile", async () => {
      const result = await vpnns(dirs, ["profile", "default", "nosuchprofile"]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain("profile nosuchprofile not found");
    });

    it("profile default --clear removes it", async () => {
      const clear = await vpnns(dirs, ["profile", "default", "--clear"]);
      expect(clear.exitCode, clear.all).toBe(0);
      const show = await vpnns(dirs, ["profile", "default"]);
      expect(show.stdout).toBe("");
      expect(show.stderr).toContain("no default profile");
    });

    it("invalid file fails naming it", async () => {
      const file = join(dirs.configDir, "apps.json");
      const saved = await readFile(file, "utf8");
      try {
        await writeFile(file, '{"apps": {"fire fox": "apps-a"}}');
        for (const args of [["app", "list"], ["run", "--as-root", "--", "true"], ["status"]]) {
          const result = await vpnns(dirs, args);
          expect(result.exitCode, args.join(" ")).toBe(2);
          expect(result.stderr).toContain(`invalid app assignments file ${file}`);
        }
        await writeFile(file, "{ not json");
        const result = await vpnns(dirs, ["app", "list"]);
        expect(result.exitCode).toBe(2);
        expect(result.stderr).toContain(`invalid app assignments file ${file}`);
      } finally {
        await writeFile(file, saved);
      }
    });
  });

  describe("single-instance apps", () => {
    it("status shows assigned apps", async () => {
      const set = await vpnns(dirs, ["app", "set", "instance-app", "apps-a"]);
      expect(set.exitCode, set.all).toBe(0);
      const report = await status("apps-a");
      expect(report.apps).toEqual(["instance-app"]);
      expect(report.isDefault).toBe(false);
      expect((await status("apps-b")).apps).toEqual([]);
    });

    it("hand-off inside the profile is quiet", async () => {
      const folder = await userFolder();
      const instance = execa(process.execPath, [CLI, "run", "--", "instance-app", "first"], {
        env: { VPNNS_CONFIG_DIR: dirs.configDir, VPNNS_STATE_DIR: dirs.stateDir, ...sudoEnv(user), PATH: `${bin}:${process.env.PATH}`, INSTANCE_APP_DIR: folder },
        reject: false,
      });
      background.push(instance);
      await waitForLine(instance, "instance ready");

      const report = await status("apps-a");
      const entry = report.processes.find((candidate) => candidate.command === "instance-app");
      expect(entry, JSON.stringify(report.processes)).toBeDefined();
      expect(entry!.app).toBe("instance-app");
      expect(entry!.uid).toBe(user.uid);
      const text = await vpnns(dirs, ["status", "apps-a"]);
      expect(text.stdout).toContain("  apps:       instance-app");
      expect(text.stdout).toMatch(/\d+ instance-app \(uid \d+, app instance-app\)/);

      const second = await vpnnsAsUser(["run", "--", "instance-app", "second"], { INSTANCE_APP_DIR: folder });
      expect(second.exitCode, second.all).toBe(0);
      expect(second.stderr).not.toContain("handed");
      expect(await readFile(join(folder, "received.log"), "utf8")).toContain('"args":["second"]');

      instance.kill("SIGTERM");
      await instance;
    });

    it("hand-off outside warns", async () => {
      const folder = await userFolder();
      const { instance: outside } = await startOutside("instance-app", { INSTANCE_APP_DIR: folder });
      const result = await vpnnsAsUser(["run", "--profile", "apps-a", "--", "instance-app", "hello"], { INSTANCE_APP_DIR: folder });
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stderr).toContain("vpnns: warning: instance-app exited with code 0 after");
      expect(result.stderr).toContain(`while instance-app runs outside profile apps-a (pid ${outside.pid} outside every profile)`);
      expect(result.stderr).toContain("the launch was probably handed to that instance");
      expect(result.stderr).toContain("is not protected by the VPN");
      expect(await readFile(join(folder, "received.log"), "utf8")).toContain('"args":["hello"]');
      outside.kill("SIGTERM");
      await outside;
    });

    it("failed quick exit gives no warning", async () => {
      const folder = await userFolder();
      const { instance: outside } = await startOutside("instance-app", { INSTANCE_APP_DIR: folder });
      const result = await vpnnsAsUser(["run", "--profile", "apps-a", "--", "instance-app", "hello"], { INSTANCE_APP_DIR: folder, INSTANCE_APP_EXIT_CODE: "3" });
      expect(result.exitCode).toBe(3);
      expect(result.stderr).not.toContain("handed");
      outside.kill("SIGTERM");
      await outside;
    });

    it("firefox gets its own profile folder", async () => {
      const folder = await userFolder();
      const argvFile = join(folder, "argv.json");
      const env = { INSTANCE_APP_DIR: folder, INSTANCE_APP_ARGV_FILE: argvFile, INSTANCE_APP_LINGER_MS: "0" };
      const result = await vpnnsAsUser(["run", "--profile", "apps-a", "--", "firefox", "about:blank"], env);
      expect(result.exitCode, result.all).toBe(0);

      const dataFolder = join(user.home, ".local/share/vpnns/apps-a/firefox");
      const argv = JSON.parse(await readFile(argvFile, "utf8")) as string[];
      expect(argv.slice(2)).toEqual(["--no-remote", "--profile", dataFolder, "about:blank"]);
      const info = await stat(dataFolder);
      expect(info.isDirectory()).toBe(true);
      expect(info.uid).toBe(user.uid);
      expect(info.gid).toBe(user.gid);
      expect(info.mode & 0o777).toBe(0o700);
      expect((await stat(join(user.home, ".local"))).uid).toBe(user.uid);
      expect(result.stderr).toContain(`created ${dataFolder}`);

      const again = await vpnnsAsUser(["run", "--profile", "apps-a", "--", "firefox", "about:blank"], env);
      expect(again.exitCode, again.all).toBe(0);
      expect(again.stderr).not.toContain("created");
    });

    it("firefox keeps the user's profile", async () => {
      const folder = await userFolder();
      const argvFile = join(folder, "argv.json");
      const env = { INSTANCE_APP_DIR: folder, INSTANCE_APP_ARGV_FILE: argvFile, INSTANCE_APP_LINGER_MS: "0" };
      const result = await vpnnsAsUser(["run", "--profile", "apps-a", "--", "firefox", "-P", "work", "about:blank"], env);
      expect(result.exitCode, result.all).toBe(0);
      const argv = JSON.parse(await readFile(argvFile, "utf8")) as string[];
      expect(argv.slice(2)).toEqual(["--no-remote", "-P", "work", "about:blank"]);
    });

    it("firefox folder honours XDG_DATA_HOME", async () => {
      const folder = await userFolder();
      const argvFile = join(folder, "argv.json");
      const dataHome = join(user.home, "xdg-data");
      const env = { INSTANCE_APP_DIR: folder, INSTANCE_APP_ARGV_FILE: argvFile, INSTANCE_APP_LINGER_MS: "0", XDG_DATA_HOME: dataHome };
      const result = await vpnnsAsUser(["run", "--profile", "apps-b", "--", "firefox"], env);
      expect(result.exitCode, result.all).toBe(0);
      const argv = JSON.parse(await readFile(argvFile, "utf8")) as string[];
      expect(argv.slice(2)).toEqual(["--no-remote", "--profile", join(dataHome, "vpnns/apps-b/firefox")]);
      expect((await stat(join(dataHome, "vpnns/apps-b/firefox"))).uid).toBe(user.uid);
    });
  });
});
