/**
 * Least privilege for apps: an app that `vpnns run` starts for a user runs as that user with no
 * capabilities. It cannot change the namespace's firewall, addresses, routes or DNS files, cannot
 * write vpnns's state or config or hold its locks, and cannot leave the namespace, through vpnns
 * or otherwise. Runs only inside test/sandbox.sh, and imports the lab from dist/ (npm run build first).
 */
import { execa } from "execa";
import { chmod, readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, test } from "vitest";
import type { Lab } from "../../src/lab/lab.js";
import { interfaceName, namespaceName } from "../../src/core/names.js";
import { CLI, SKIP_REASON, importClient, makeDirs, sandboxed, vpnns, type TestDirs } from "./helpers.js";

/** The user that these tests create in the sandbox's private /etc. */
const TEST_USER = "vpnnsprivuser";

const PROFILE = "confined";
const OTHER_PROFILE = "neighbor";
const NAMESPACE = namespaceName(PROFILE);
const LINK = interfaceName(PROFILE);

async function command(argv: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const [file = "", ...args] = argv;
  const result = await execa(file, args, { reject: false });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Creates TEST_USER unless it exists. The sandbox's /etc is a private overlay and the home folder
 * goes to the sandbox's private /run/vpnns tmpfs, so the machine's /etc and /home stay unchanged.
 */
async function ensureTestUser(): Promise<{ uid: number; gid: number }> {
  if ((await command(["getent", "passwd", TEST_USER])).exitCode !== 0) {
    const result = await command(["useradd", "--create-home", "--home-dir", `/run/vpnns/home-${TEST_USER}`, "--no-log-init", TEST_USER]);
    if (result.exitCode !== 0) throw new Error(`useradd ${TEST_USER} failed: ${result.stderr}`);
  }
  const fields = (await command(["getent", "passwd", TEST_USER])).stdout.trim().split(":");
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

/** Runs a command as root inside a namespace and returns its stdout. */
async function inside(namespace: string, argv: string[]): Promise<string> {
  const result = await command(["ip", "netns", "exec", namespace, ...argv]);
  if (result.exitCode !== 0) throw new Error(`${argv.join(" ")} in ${namespace} failed: ${result.stderr}`);
  return result.stdout;
}

/** List the firewall, addresses and routes of the namespace, as root sees them. */
async function namespaceSnapshot(): Promise<string> {
  const parts = [
    await inside(NAMESPACE, ["nft", "list", "ruleset"]),
    await inside(NAMESPACE, ["ip", "-o", "addr", "show"]),
    await inside(NAMESPACE, ["ip", "route", "show", "table", "all"]),
    await inside(NAMESPACE, ["ip", "-6", "route", "show", "table", "all"]),
    await inside(NAMESPACE, ["ip", "-o", "link", "show"]),
  ];
  return parts.join("\n----\n");
}

if (!sandboxed) test.skip(`privilege tests skipped: ${SKIP_REASON}`, () => {});

describe.skipIf(!sandboxed)("least privilege for apps", () => {
  let lab: Lab;
  let dirs: TestDirs;
  let user: { uid: number; gid: number };
  let sudoEnv: Record<string, string>;

  /** Runs the command inside PROFILE as TEST_USER, as `sudo vpnns run` by that user would. */
  function asUser(argv: string[]) {
    return vpnns(dirs, ["run", "--profile", PROFILE, "--", ...argv], { env: sudoEnv });
  }

  /** Runs a shell script inside PROFILE as TEST_USER. */
  function shellAsUser(script: string) {
    return asUser(["sh", "-c", script]);
  }

  beforeAll(async () => {
    const labModule = (await import("../../dist/lab/lab.js")) as typeof import("../../src/lab/lab.js");
    lab = await labModule.createLab();
    dirs = await makeDirs("privilege");
    // mkdtemp made the test's root folder 0700. Opened up, only the modes vpnns sets protect its folders.
    await chmod(dirname(dirs.configDir), 0o755);
    user = await ensureTestUser();
    sudoEnv = { SUDO_UID: String(user.uid), SUDO_GID: String(user.gid), SUDO_USER: TEST_USER };
    await importClient(dirs, lab, PROFILE);
    await importClient(dirs, lab, OTHER_PROFILE);
    for (const profile of [PROFILE, OTHER_PROFILE]) {
      const result = await vpnns(dirs, ["up", profile]);
      if (result.exitCode !== 0) throw new Error(`vpnns up ${profile} failed: ${result.all}`);
    }
  });

  afterAll(async () => {
    if (dirs) await vpnns(dirs, ["down", "--all"]);
    await lab?.destroy();
  });

  describe("identity", () => {
    it("runs as the user", async () => {
      const result = await shellAsUser('echo "$(id -u) $(id -g)"');
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stdout.trim()).toBe(`${user.uid} ${user.gid}`);
    });

    it("holds no capabilities", async () => {
      const result = await asUser(["cat", "/proc/self/status"]);
      expect(result.exitCode, result.all).toBe(0);
      const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)$`, "m").exec(result.stdout)?.[1];
      for (const name of ["CapInh", "CapPrm", "CapEff", "CapAmb"]) expect({ name, value: field(name) }).toEqual({ name, value: "0000000000000000" });
      for (const name of ["Uid", "Gid"]) {
        const expected = name === "Uid" ? user.uid : user.gid;
        const values = new RegExp(`^${name}:\\s*(.*)$`, "m").exec(result.stdout)?.[1]?.trim().split(/\s+/).map(Number);
        // Real, effective, saved and file-system IDs.
        expect(values).toEqual([expected, expected, expected, expected]);
      }
    });

    it("no_new_privs stays off", async () => {
      // vpnns does not set no_new_privs: setuid programs such as sudo work inside as outside.
      const status = await asUser(["cat", "/proc/self/status"]);
      expect(/^NoNewPrivs:\s*(\d)$/m.exec(status.stdout)?.[1]).toBe("0");
      // sudo runs with its setuid bit and rejects the user, who has no sudo rights, itself.
      const sudo = await asUser(["sudo", "-n", "true"]);
      expect(sudo.exitCode).not.toBe(0);
      expect(sudo.stderr).toContain("sudo: a password is required");
    });

    it("is inside the profile's namespace", async () => {
      const { ino } = await stat(join("/run/netns", NAMESPACE));
      const result = await asUser(["readlink", "/proc/self/ns/net"]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stdout.trim()).toBe(`net:[${ino}]`);
    });
  });

  describe("the namespace's network", () => {
    let before: string;

    beforeAll(async () => {
      before = await namespaceSnapshot();
    });

    it("nft changes fail", async () => {
      for (const argv of [
        ["nft", "add", "table", "inet", "intruder"],
        ["nft", "flush", "ruleset"],
        ["nft", "delete", "table", "inet", "vpnns"],
        ["nft", "add", "rule", "inet", "vpnns", "output", "accept"],
      ]) {
        const result = await asUser(argv);
        expect(result.exitCode, argv.join(" ")).not.toBe(0);
        expect(result.stderr, argv.join(" ")).toContain("Operation not permitted");
      }
    });

    it("iptables changes fail", async () => {
      for (const argv of [
        ["iptables", "-P", "OUTPUT", "ACCEPT"],
        ["ip6tables", "-A", "OUTPUT", "-j", "ACCEPT"],
      ]) {
        const result = await asUser(argv);
        expect(result.exitCode, argv.join(" ")).not.toBe(0);
        expect(result.stderr, argv.join(" ")).toMatch(/Permission denied|Operation not permitted/);
      }
    });

    it("route and address changes fail", async () => {
      for (const argv of [
        ["ip", "route", "add", "198.51.100.0/24", "dev", LINK],
        ["ip", "route", "del", "default", "dev", LINK],
        ["ip", "addr", "add", "203.0.113.5/32", "dev", LINK],
        ["ip", "link", "set", "dev", LINK, "down"],
        ["ip", "link", "add", "vpnnsveth0", "type", "veth", "peer", "name", "vpnnsveth1"],
      ]) {
        const result = await asUser(argv);
        expect(result.exitCode, argv.join(" ")).not.toBe(0);
        expect(result.stderr, argv.join(" ")).toContain("Operation not permitted");
      }
    });

    it("firewall, addresses and routes unchanged", async () => {
      expect(await namespaceSnapshot()).toBe(before);
    });
  });

  describe("files", () => {
    it("DNS files are read-only", async () => {
      const folder = `/etc/netns/${NAMESPACE}`;
      const before = await readFile(join(folder, "resolv.conf"), "utf8");
      const targets = ["/etc/resolv.conf", "/etc/nsswitch.conf", join(folder, "resolv.conf"), join(folder, "nsswitch.conf"), join(folder, "hosts")];
      for (const target of targets) {
        const result = await shellAsUser(`echo "nameserver 203.0.113.53" >> ${target}`);
        expect(result.exitCode, target).not.toBe(0);
        expect(result.stderr, target).toMatch(/Permission denied|Read-only file system/);
      }
      // The app reads the profile's resolv.conf, unchanged.
      const read = await asUser(["cat", "/etc/resolv.conf"]);
      expect(read.stdout).toBe(before.trimEnd());
      expect(await readFile(join(folder, "resolv.conf"), "utf8")).toBe(before);
    });

    it("DNS files readable under umask 077", async () => {
      const profile = "strictumask";
      await importClient(dirs, lab, profile);
      // A hardened root shell creates files with umask 077, which would hide them from the app.
      const up = await execa("sh", ["-c", `umask 077; exec "$0" "$@"`, process.execPath, CLI, "up", profile], {
        reject: false,
        env: { VPNNS_CONFIG_DIR: dirs.configDir, VPNNS_STATE_DIR: dirs.stateDir },
      });
      expect(up.exitCode, up.stderr).toBe(0);
      try {
        const result = await vpnns(dirs, ["run", "--profile", profile, "--", "cat", "/etc/resolv.conf", "/etc/nsswitch.conf"], { env: sudoEnv });
        expect(result.exitCode, result.all).toBe(0);
        expect(result.stdout).toContain(`nameserver ${lab.serviceAddress4}`);
        expect(result.stdout).toContain("hosts: files dns");
      } finally {
        await vpnns(dirs, ["down", profile]);
      }
    });

    it("config and state folders are 0700", async () => {
      const folders = [dirs.configDir, join(dirs.configDir, "profiles"), dirs.stateDir, join(dirs.stateDir, PROFILE), join(dirs.stateDir, "locks")];
      for (const folder of folders) {
        const info = await stat(folder);
        expect({ folder, mode: (info.mode & 0o7777).toString(8), uid: info.uid }).toEqual({ folder, mode: "700", uid: 0 });
      }
    });

    it("config and state are not writable", async () => {
      const targets = [
        join(dirs.configDir, "apps.json"),
        join(dirs.configDir, "settings.json"),
        join(dirs.configDir, "profiles", `${PROFILE}.json`),
        join(dirs.configDir, "profiles", "planted.json"),
        join(dirs.stateDir, PROFILE, "state.json"),
        join(dirs.stateDir, PROFILE, "runs", "1"),
        join(dirs.stateDir, "planted", "state.json"),
      ];
      for (const target of targets) {
        const result = await shellAsUser(`echo '{}' > ${target}`);
        expect(result.exitCode, target).not.toBe(0);
        expect(result.stderr, target).toContain("Permission denied");
      }
      const listing = await asUser(["ls", dirs.stateDir, dirs.configDir]);
      expect(listing.exitCode).not.toBe(0);
      expect(listing.stderr).toContain("Permission denied");
    });

    it("profile is not readable", async () => {
      const result = await asUser(["cat", join(dirs.configDir, "profiles", `${PROFILE}.json`)]);
      expect(result.exitCode).not.toBe(0);
      expect(result.stdout).toBe("");
    });

    it("lock files cannot be held", async () => {
      const lock = join(dirs.stateDir, "locks", `${PROFILE}.lock`);
      // flock(1) opens or creates the file before it locks it.
      for (const target of [lock, join(dirs.stateDir, "locks", "planted.lock")]) {
        const result = await asUser(["flock", "--nonblock", target, "true"]);
        expect(result.exitCode, target).not.toBe(0);
        expect(result.stderr, target).toContain("Permission denied");
      }
      // With no lock held by the app, root's commands on the profile still run.
      const status = await vpnns(dirs, ["status", PROFILE, "--json"]);
      expect(status.exitCode, status.all).toBe(0);
      expect((JSON.parse(status.stdout) as { state: string }).state).toBe("up");
    });
  });

  describe("leaving the namespace", () => {
    it("vpnns from inside needs sudo", async () => {
      // Non-root vpnns re-runs itself through sudo, which rejects a user without sudo rights.
      const result = await asUser([process.execPath, CLI, "run", "--profile", OTHER_PROFILE, "--", "true"]);
      expect(result.exitCode).not.toBe(0);
      expect(result.stderr).toContain("asking sudo");
      expect(result.stderr).toMatch(/sudo: (a terminal is required|a password is required)/);
    });

    it("vpnns process cannot be signaled", async () => {
      // The app's parent is the vpnns process, which runs as root.
      const result = await shellAsUser('kill -STOP "$PPID"');
      expect(result.exitCode).not.toBe(0);
      expect(result.stderr).toMatch(/Operation not permitted/);
    });

    it("joining other namespaces fails", async () => {
      const targets = ["/proc/1/ns/net", join("/run/netns", namespaceName(OTHER_PROFILE)), join("/run/netns", lab.providerNamespace)];
      for (const target of targets) {
        const result = await asUser(["nsenter", `--net=${target}`, "true"]);
        expect(result.exitCode, target).not.toBe(0);
        expect(result.stderr, target).toMatch(/Permission denied|Operation not permitted/);
      }
      const netnsExec = await asUser(["ip", "netns", "exec", namespaceName(OTHER_PROFILE), "true"]);
      expect(netnsExec.exitCode).not.toBe(0);
    });

    it("own user namespace does not help", async () => {
      // Root in a new user namespace has no capabilities over namespaces the machine's root owns.
      const target = join("/run/netns", namespaceName(OTHER_PROFILE));
      const result = await shellAsUser(`unshare --user --map-root-user sh -c 'echo mapped-uid=$(id -u); nsenter --net=${target} true'`);
      expect(result.stdout).toContain("mapped-uid=0");
      expect(result.exitCode).not.toBe(0);
      expect(result.stderr).toMatch(/Permission denied|Operation not permitted/);
    });
  });
});
