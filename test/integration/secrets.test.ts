/**
 * Secrets stay secret: the private and preshared keys of a profile never appear on a command line,
 * in a process environment, in output at any verbosity, in an error message or in a file that
 * others could read. A scanner process polls /proc and vpnns's folders while the commands run.
 * Runs only inside test/sandbox.sh, and imports the lab from dist/ (npm run build first).
 */
import { execa, type ResultPromise } from "execa";
import { chmod, chown, mkdtemp, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it, test } from "vitest";
import type { Lab, LabClient } from "../../src/lab/lab.js";
import type { ProfileReport } from "../../src/core/status.js";
import { SKIP_REASON, makeDirs, sandboxed, vpnns, type TestDirs } from "./helpers.js";

/** Debug switches for the Node.js modules vpnns uses: execa's verbose mode, streams and child processes. */
const NODE_DEBUG = "execa,stream,child_process";

/**
 * A scanner for `node -e`. It reads a JSON object {needles: {label: text}, folders: [path]} from
 * its first stdin line, prints "ready" after its first scan, and scans until stdin closes: the
 * cmdline and environ of every other process, and every file below the folders. Then it prints one
 * JSON line with the number of scans, the processes whose cmdline or environ contained a needle,
 * and the files that contained one, with their mode and owner. It never prints a needle itself.
 */
const SCANNER = `
const fs = require("node:fs");
const path = require("node:path");
const input = require("node:readline").createInterface({ input: process.stdin });
let needles;
let folders;
let scans = 0;
let stopped = false;
const processHits = new Map();
const fileHits = new Map();

function labelsIn(buffer) {
  const text = buffer.toString("latin1");
  return Object.entries(needles).filter(([, needle]) => text.includes(needle)).map(([label]) => label);
}

function scanProcesses() {
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\\d+$/.test(entry) || Number(entry) === process.pid) continue;
    for (const where of ["cmdline", "environ"]) {
      let content;
      try {
        content = fs.readFileSync("/proc/" + entry + "/" + where);
      } catch {
        continue;
      }
      for (const label of labelsIn(content)) {
        let command = "?";
        try {
          command = fs.readFileSync("/proc/" + entry + "/comm", "utf8").trim();
        } catch {
          // The process ended before its name could be read.
        }
        processHits.set(entry + " " + where + " " + label, { pid: Number(entry), where, label, command });
      }
    }
  }
}

function scanFolder(folder) {
  let entries;
  try {
    entries = fs.readdirSync(folder, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const file = path.join(folder, entry.name);
    if (entry.isDirectory()) {
      scanFolder(file);
      continue;
    }
    if (!entry.isFile()) continue;
    try {
      const info = fs.statSync(file);
      const labels = labelsIn(fs.readFileSync(file));
      if (labels.length > 0) fileHits.set(file + " " + info.mode + " " + info.uid, { file, mode: info.mode & 0o7777, uid: info.uid, labels });
    } catch {
      // The file went away between the listing and the read.
    }
  }
}

function scan() {
  scanProcesses();
  for (const folder of folders) scanFolder(folder);
  for (const netns of fs.existsSync("/etc/netns") ? fs.readdirSync("/etc/netns") : []) {
    if (netns.startsWith("vpnns-")) scanFolder(path.join("/etc/netns", netns));
  }
  scans += 1;
}

function loop() {
  if (stopped) return;
  scan();
  setImmediate(loop);
}

input.once("line", (line) => {
  ({ needles, folders } = JSON.parse(line));
  scan();
  process.stdout.write("ready\\n");
  setImmediate(loop);
});
input.on("close", () => {
  stopped = true;
  scan();
  process.stdout.write(JSON.stringify({ scans, processes: [...processHits.values()], files: [...fileHits.values()] }) + "\\n");
});
`;

interface ScanReport {
  scans: number;
  processes: { pid: number; where: string; label: string; command: string }[];
  files: { file: string; mode: number; uid: number; labels: string[] }[];
}

/** A running scanner; stop() closes its stdin and returns what it found. */
interface Scanner {
  stop(): Promise<ScanReport>;
}

async function startScanner(needles: Record<string, string>, folders: string[]): Promise<Scanner> {
  const child: ResultPromise<{ reject: false; stdin: "pipe" }> = execa(process.execPath, ["-e", SCANNER], { reject: false, stdin: "pipe" });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  child.stdin.write(`${JSON.stringify({ needles, folders })}\n`);
  const ready = await lines.next();
  if (ready.value !== "ready") throw new Error(`scanner did not start: ${String(ready.value)} ${(await child).stderr}`);
  return {
    async stop() {
      child.stdin.end();
      const report = await lines.next();
      const result = await child;
      if (typeof report.value !== "string") throw new Error(`scanner printed no report: ${result.stderr}`);
      return JSON.parse(report.value) as ScanReport;
    },
  };
}

/** The private and preshared keys in a wg-quick text. */
function keysOf(profileText: string): { privateKey: string; presharedKey: string } {
  const privateKey = /^PrivateKey = (\S+)$/m.exec(profileText)?.[1];
  const presharedKey = /^PresharedKey = (\S+)$/m.exec(profileText)?.[1];
  if (privateKey === undefined || presharedKey === undefined) throw new Error(`the lab's profile lacks a key:\n${profileText.replace(/=.*$/gm, "= ...")}`);
  return { privateKey, presharedKey };
}

/**
 * Each key in the forms a leak could take: the base64 text, the hex of its 32 bytes (the UAPI form),
 * and the hex of the first 20 characters of the text, spaced as Node.js prints a Buffer.
 */
function needlesFor(keys: Record<string, string>): Record<string, string> {
  const needles: Record<string, string> = {};
  for (const [label, key] of Object.entries(keys)) {
    needles[`${label} (base64)`] = key;
    needles[`${label} (hex)`] = Buffer.from(key, "base64").toString("hex");
    needles[`${label} (buffer)`] = [...Buffer.from(key.slice(0, 20), "latin1")].map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
  }
  return needles;
}

/** Remove the ANSI color sequences that execa's verbose log adds. */
function withoutColors(text: string): string {
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

/** Labels of the needles found in a text. */
function leaksIn(text: string, needles: Record<string, string>): string[] {
  return Object.entries(needles)
    .filter(([, needle]) => text.includes(needle))
    .map(([label]) => label);
}

interface FileEntry {
  path: string;
  mode: number;
  uid: number;
  isDirectory: boolean;
  content?: string;
}

/**
 * Read a file as latin1 text. A namespace file bound into the state folder (the profile's mount
 * namespace) reads as EINVAL and holds no data, so it counts as empty.
 */
async function readContent(path: string): Promise<string> {
  try {
    return await readFile(path, "latin1");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EINVAL") return "";
    throw error;
  }
}

/** Every file and folder below a folder, with its mode, owner and (for files) content. */
async function walk(folder: string): Promise<FileEntry[]> {
  const found: FileEntry[] = [];
  let entries;
  try {
    entries = await readdir(folder, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const entry of entries) {
    const path = join(folder, entry.name);
    const info = await stat(path);
    if (entry.isDirectory()) {
      found.push({ path, mode: info.mode & 0o7777, uid: info.uid, isDirectory: true });
      found.push(...(await walk(path)));
    } else {
      found.push({ path, mode: info.mode & 0o7777, uid: info.uid, isDirectory: false, content: await readContent(path) });
    }
  }
  return found;
}

async function netnsFolders(): Promise<string[]> {
  const names = await readdir("/etc/netns").catch(() => [] as string[]);
  return names.filter((name) => name.startsWith("vpnns-")).map((name) => join("/etc/netns", name));
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, "0");
}

/** A PATH whose first folder has a `wg` that prints the file given to `wg setconf` on stderr and fails, as a tool that quotes its input would. */
async function pathWithQuotingWg(): Promise<string> {
  const folder = await mkdtemp("/run/vpnns/quoting-wg-");
  const realWg = (await execa("sh", ["-c", "command -v wg"])).stdout.trim();
  const script = [
    "#!/bin/sh",
    'if [ "$1" = setconf ]; then',
    '  echo "wg: rejected configuration:" >&2',
    '  cat "$3" >&2',
    "  exit 1",
    "fi",
    `exec ${realWg} "$@"`,
    "",
  ].join("\n");
  await writeFile(join(folder, "wg"), script, { mode: 0o755 });
  return `${folder}:${process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}`;
}

// ---------------------------------------------------------------------------------------------

if (!sandboxed) test.skip(`secrets tests skipped: ${SKIP_REASON}`, () => {});

describe.skipIf(!sandboxed)("secrets stay secret", () => {
  let lab: Lab;
  let dirs: TestDirs;
  let client: LabClient;
  let keys: { privateKey: string; presharedKey: string };
  let needles: Record<string, string>;
  /** A folder that every user may read, for the imported wg-quick files. */
  let sources: string;

  beforeAll(async () => {
    const labModule = (await import("../../dist/lab/lab.js")) as typeof import("../../src/lab/lab.js");
    lab = await labModule.createLab();
    dirs = await makeDirs("secrets");
    client = await lab.addClient({ presharedKey: true });
    keys = keysOf(client.profileText);
    needles = needlesFor(keys);
    sources = await mkdtemp("/run/vpnns/secrets-sources-");
    await chmod(sources, 0o755);
  });

  afterAll(async () => {
    if (dirs) await vpnns(dirs, ["down", "--all"]);
    await lab?.destroy();
  });

  describe("a whole session under the scanner", () => {
    const profile = "watched";
    const outputs: { command: string; output: string; stdout: string }[] = [];
    let report: ScanReport;
    let filesWhileUp: FileEntry[];

    /** Runs vpnns with -v and every debug switch, and keeps its output for the leak checks. */
    async function verbose(args: string[], env: Record<string, string> = {}) {
      const end = args.includes("--") ? args.indexOf("--") : args.length;
      const result = await vpnns(dirs, [...args.slice(0, end), "-v", ...args.slice(end)], { env: { NODE_DEBUG, ...env } });
      // execa colors its log lines, so the escape sequences are removed before the checks.
      outputs.push({ command: args.join(" "), output: withoutColors(result.all ?? ""), stdout: result.stdout });
      return result;
    }

    beforeAll(async () => {
      const scanner = await startScanner({ ...needles, canary: "vpnns-scanner-canary" }, [dirs.configDir, dirs.stateDir]);
      try {
        // A process that carries the canary proves that the scanner reads command lines.
        await execa("sh", ["-c", "sleep 0.5", "vpnns-scanner-canary"]);

        // The file is world-readable, and the import reads it as user nobody, as under sudo.
        const file = join(sources, `${profile}.conf`);
        await writeFile(file, client.profileText, { mode: 0o644 });
        await chmod(file, 0o644);
        const imported = await verbose(["profile", "import", file, "--name", profile], { SUDO_UID: "65534", SUDO_GID: "65534", SUDO_USER: "nobody" });
        if (imported.exitCode !== 0) throw new Error(`import failed: ${imported.all}`);

        const up = await verbose(["up", profile]);
        if (up.exitCode !== 0) throw new Error(`up failed: ${up.all}`);
        filesWhileUp = [...(await walk(dirs.configDir)), ...(await walk(dirs.stateDir))];
        for (const folder of await netnsFolders()) filesWhileUp.push(...(await walk(folder)));

        await verbose(["status", profile]);
        await verbose(["status", profile, "--json"]);
        await verbose(["status", "--json"]);
        await verbose(["profile", "show", profile]);
        await verbose(["profile", "show", profile, "--json"]);
        await verbose(["profile", "list", "--json"]);
        await verbose(["run", "--profile", profile, "--", "sh", "-c", "env; cat /etc/resolv.conf"]);
        await verbose(["down", profile]);
        // `run` on a profile that is down brings it up and takes it down again.
        await verbose(["run", "--profile", profile, "--", "true"]);
      } finally {
        report = await scanner.stop();
      }
    });

    it("scanner sees command lines", () => {
      expect(report.scans).toBeGreaterThan(10);
      expect(report.processes.some((hit) => hit.label === "canary" && hit.where === "cmdline")).toBe(true);
    });

    it("no key on a command line or in an environment", () => {
      expect(report.processes.filter((hit) => hit.label !== "canary")).toEqual([]);
    });

    it("files with a key are 0600 and owned by root", () => {
      // The stored profile contains both keys, so the scanner must have found it.
      expect(report.files.some((hit) => hit.file.endsWith(`profiles/${profile}.json`))).toBe(true);
      for (const hit of report.files) {
        expect({ file: hit.file, mode: octal(hit.mode), uid: hit.uid }).toEqual({ file: hit.file, mode: "0600", uid: 0 });
      }
    });

    it("files of a profile that is up", () => {
      const withKeys = filesWhileUp.filter((entry) => leaksIn(entry.content ?? "", needles).length > 0);
      expect(withKeys.map((entry) => entry.path)).toEqual([join(dirs.configDir, "profiles", `${profile}.json`)]);
      for (const entry of withKeys) expect({ path: entry.path, mode: octal(entry.mode), uid: entry.uid }).toEqual({ path: entry.path, mode: "0600", uid: 0 });
      // The wg setconf input exists only while the command runs.
      expect(filesWhileUp.map((entry) => entry.path)).not.toContain(join(dirs.stateDir, profile, "wg-setconf.conf"));
    });

    it("config and state folders are 0700", () => {
      const folders = filesWhileUp.filter((entry) => entry.isDirectory && !entry.path.startsWith("/etc/netns/"));
      expect(folders.length).toBeGreaterThan(0);
      for (const entry of folders) expect({ path: entry.path, mode: octal(entry.mode), uid: entry.uid }).toEqual({ path: entry.path, mode: "0700", uid: 0 });
    });

    it("verbose and debug output is there", () => {
      const up = outputs.find((entry) => entry.command === `up ${profile}`)?.output ?? "";
      // -v prints the state-changing commands, and NODE_DEBUG=execa makes execa print every command.
      expect(up).toContain(`[#] wg setconf ${"vns-" + profile}`);
      expect(up).toMatch(/\$ ip netns exec vpnns-watched nft /);
      // The handshake wait talks to wireguard-go over its control socket, in this process.
      expect(up).toContain("[#] uapi /var/run/wireguard/vns-watched.sock: set peer");
      expect(up).toMatch(/STREAM \d+:/);
    });

    it("no key in any output", () => {
      expect(outputs.length).toBe(11);
      for (const { command, output } of outputs) expect({ command, leaks: leaksIn(output, needles) }).toEqual({ command, leaks: [] });
    });

    it("status shows the handshake without keys", () => {
      const status = outputs.find((entry) => entry.command === `status ${profile} --json`)?.stdout ?? "";
      const parsed = JSON.parse(status) as ProfileReport;
      expect(parsed.state).toBe("up");
      expect(parsed.peers).toHaveLength(1);
      expect(parsed.peers[0]!.latestHandshakeAgeSeconds).not.toBeNull();
    });

    it("show hides both keys", () => {
      const show = outputs.find((entry) => entry.command === `profile show ${profile}`)?.output ?? "";
      expect(show).toContain("privatekey: (hidden)");
      expect(show).toContain("presharedkey: (hidden)");
    });

    it("import warns about a world-readable file", () => {
      const file = join(sources, `${profile}.conf`);
      const imported = outputs.find((entry) => entry.command.startsWith("profile import"))?.output ?? "";
      expect(imported).toContain(
        `vpnns: warning: ${file} is readable by every user of this machine and contains a private key: run chmod 600 ${file}, or delete it now that it is imported`,
      );
    });
  });

  describe("error messages", () => {
    /** Imports the lab client's profile with one line changed, from a 0600 file. */
    async function importEdited(profile: string, edit: (text: string) => string): Promise<void> {
      const file = join(sources, `${profile}.conf`);
      await writeFile(file, edit(client.profileText), { mode: 0o600 });
      const result = await vpnns(dirs, ["profile", "import", file, "--name", profile]);
      if (result.exitCode !== 0) throw new Error(`import of ${profile} failed: ${result.all}`);
    }

    it("endpoint name that does not resolve", async () => {
      const profile = "noname";
      await importEdited(profile, (text) => text.replace(/^Endpoint = .*$/m, "Endpoint = vpnns-test.invalid:51820"));
      // The sandbox's /etc is private. A resolver on loopback, where nothing listens, fails the
      // lookup at once and keeps the query on this machine; wg is told not to retry.
      const resolvConf = await readFile("/etc/resolv.conf", "utf8");
      await writeFile("/etc/resolv.conf", "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n");
      let result;
      try {
        result = await vpnns(dirs, ["up", "-v", profile], { env: { NODE_DEBUG, WG_ENDPOINT_RESOLUTION_RETRIES: "0" } });
      } finally {
        await writeFile("/etc/resolv.conf", resolvConf);
      }
      expect(result.exitCode, result.all).toBe(1);
      expect(result.stderr).toContain("vpnns-test.invalid:51820");
      expect(leaksIn(result.all ?? "", needles)).toEqual([]);
    });

    it("endpoint that never answers", async () => {
      const profile = "silent";
      await importEdited(profile, (text) => text.replace(/^Endpoint = .*$/m, "Endpoint = 198.51.100.1:51820"));
      const result = await vpnns(dirs, ["up", "-v", profile, "--handshake-timeout", "1"], { env: { NODE_DEBUG } });
      expect(result.exitCode, result.all).toBe(1);
      expect(result.stderr).toContain("no WireGuard handshake with 198.51.100.1:51820");
      expect(leaksIn(result.all ?? "", needles)).toEqual([]);
    });

    it("import errors hide keys", async () => {
      const { privateKey, presharedKey } = keys;
      const variants = {
        "truncated private key": client.profileText.replace(privateKey, privateKey.slice(0, 40)),
        "truncated preshared key": client.profileText.replace(presharedKey, `${presharedKey.slice(0, 43)}`),
        "misspelled key name": client.profileText.replace("PrivateKey =", "PrivateKye ="),
        "missing equals sign": client.profileText.replace("PresharedKey = ", "PresharedKey "),
        "key in an unknown section": `${client.profileText}\n[Peers]\nPresharedKey = ${presharedKey}\n`,
      };
      for (const [name, text] of Object.entries(variants)) {
        const file = join(sources, "malformed.conf");
        await writeFile(file, text, { mode: 0o600 });
        const result = await vpnns(dirs, ["profile", "import", file, "--name", "malformed", "-v"], { env: { NODE_DEBUG } });
        expect(result.exitCode, name).toBe(2);
        expect(result.stderr, name).toContain(file);
        // A part of a key is as bad as the whole, so the first 20 characters must not appear either.
        for (const key of [privateKey, presharedKey]) expect(result.all, name).not.toContain(key.slice(0, 20));
      }
    });

    it("stored profile errors hide keys", async () => {
      const profile = "handedit";
      await importEdited(profile, (text) => text);
      const file = join(dirs.configDir, "profiles", `${profile}.json`);
      const stored = JSON.parse(await readFile(file, "utf8")) as { interface: { privateKey: string }; peers: { presharedKey?: string }[] };
      stored.interface.privateKey = `${keys.privateKey.slice(0, 43)}`;
      await writeFile(file, JSON.stringify(stored), { mode: 0o600 });
      const result = await vpnns(dirs, ["up", "-v", profile], { env: { NODE_DEBUG } });
      expect(result.exitCode, result.all).toBe(2);
      expect(result.stderr).toContain("interface.privateKey");
      expect(result.all).not.toContain(keys.privateKey.slice(0, 20));
    });

    it("wg that quotes its input", async () => {
      const profile = "quoted";
      await importEdited(profile, (text) => text);
      const result = await vpnns(dirs, ["up", "-v", profile], { env: { NODE_DEBUG, PATH: await pathWithQuotingWg() } });
      expect(result.exitCode, result.all).toBe(1);
      // The fake wg printed the configuration, so the message shows its lines with the keys hidden.
      expect(result.stderr).toContain("wg: rejected configuration:");
      expect(result.stderr).toContain("PrivateKey = (hidden)");
      expect(result.stderr).toContain("PresharedKey = (hidden)");
      expect(leaksIn(result.all ?? "", needles)).toEqual([]);
      // The failed setup removed the wg setconf input along with everything else.
      expect(await readdir(dirs.stateDir)).not.toContain(profile);
    });
  });

  describe("profile files edited by hand", () => {
    const profile = "edited";
    let file: string;

    beforeAll(async () => {
      const source = join(sources, `${profile}.conf`);
      await writeFile(source, client.profileText, { mode: 0o600 });
      const result = await vpnns(dirs, ["profile", "import", source, "--name", profile]);
      if (result.exitCode !== 0) throw new Error(`import failed: ${result.all}`);
      file = join(dirs.configDir, "profiles", `${profile}.json`);
    });

    for (const mode of [0o644, 0o640, 0o604]) {
      it(`mode ${octal(mode)} is rejected with the fix`, async () => {
        await chmod(file, mode);
        try {
          for (const args of [["up", profile], ["run", "--profile", profile, "--", "true"], ["profile", "show", profile]]) {
            const result = await vpnns(dirs, args);
            expect(result.exitCode, args.join(" ")).toBe(2);
            expect(result.stderr).toBe(
              `vpnns: profile file ${file} has mode ${octal(mode)}, but it contains a private key and must be readable by root only: run chmod 600 ${file}`,
            );
          }
          expect(await netnsFolders()).not.toContain(`/etc/netns/vpnns-${profile}`);
        } finally {
          await chmod(file, 0o600);
        }
      });
    }

    it("another owner is rejected with the fix", async () => {
      await chown(file, 65534, 65534);
      try {
        const result = await vpnns(dirs, ["up", profile]);
        expect(result.exitCode).toBe(2);
        expect(result.stderr).toBe(
          `vpnns: profile file ${file} is owned by uid 65534, but it contains a private key and must be owned by uid 0: run chown root:root ${file}`,
        );
      } finally {
        await chown(file, 0, 0);
      }
    });

    it("mode 0600 owned by root is accepted", async () => {
      const result = await vpnns(dirs, ["profile", "show", profile]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stdout).toContain(`profile ${profile}`);
    });

    it("import tightens loose folders", async () => {
      const folder = join(dirs.configDir, "profiles");
      await chmod(dirs.configDir, 0o755);
      await chmod(folder, 0o755);
      const source = join(sources, `${profile}.conf`);
      const result = await vpnns(dirs, ["profile", "import", source, "--name", profile, "--force"]);
      expect(result.exitCode, result.all).toBe(0);
      expect(octal((await stat(dirs.configDir)).mode & 0o7777)).toBe("0700");
      expect(octal((await stat(folder)).mode & 0o7777)).toBe("0700");
      expect(octal((await stat(file)).mode & 0o7777)).toBe("0600");
    });
  });
});
