/**
 * Bad input gets a clear error and changes nothing. Each case of test/fixtures/bad-input/cases.json
 * runs through the real vpnns command line and must end with its exact message and exit code.
 * The case's config, state and unit folders and its input must stay as they were, and so must
 * /etc/netns, the network namespaces, the links, the nftables ruleset and the wireguard-go daemons.
 * Inputs that would be silly to keep in git (huge, binary, FIFOs, links) come from the recipes
 * below. Runs only inside test/sandbox.sh.
 */
import { execa } from "execa";
import { createHash } from "node:crypto";
import { chmod, copyFile, lstat, mkdir, mkdtemp, readdir, readFile, readlink, symlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Lab } from "../../src/lab/lab.js";
import { interfaceName } from "../../src/core/names.js";
import { SKIP_REASON, importClient, makeDirs, sandboxed, vpnns, type TestDirs } from "./helpers.js";

const FIXTURES = fileURLToPath(new URL("../fixtures/bad-input/", import.meta.url));

/** Inputs generated at test time, because a file in git would be huge, binary or not a file. */
type Recipe =
  | "huge-conf"
  | "binary-junk"
  | "nul-junk"
  | "many-peers"
  | "long-line"
  | "fifo"
  | "directory"
  | "dev-zero"
  | "dev-zero-link"
  | "dangling-link"
  | "link-loop"
  | "root-only-link"
  | "json-huge"
  | "json-many-peers"
  | "json-fifo"
  | "json-directory"
  | "json-symlink"
  | "json-loose-mode"
  | "json-group-readable"
  | "json-interface-clash"
  | "config-file"
  | "settings-fifo"
  | "apps-fifo"
  | "settings-directory"
  | "apps-symlink"
  | "settings-huge";

/**
 * One row of cases.json. In `args`, `env` and `message`, {input} is the case's input file,
 * {work} the case's own folder, {config} the config folder and {profiles} its profiles folder.
 */
interface BadInputCase {
  id: string;
  /** The command line after "vpnns". */
  args: string[];
  /** A wg-quick fixture, relative to the fixture folder, copied with mode 0600 to {input}. */
  conf?: string;
  /** File name of {input} in {work}, default: the base name of `conf`, else input.conf. */
  confName?: string;
  /** A JSON fixture installed as {profiles}/<profile>.json with mode 0600; "NAME" in it becomes the profile name. */
  profileJson?: string;
  /** The profile name a JSON fixture or JSON recipe is installed as. */
  profile?: string;
  /** A fixture copied into the config folder as `configName`, such as settings.json. */
  configJson?: string;
  configName?: string;
  recipe?: Recipe;
  env?: Record<string, string>;
  /** The exact stderr. */
  message: string;
  exitCode: number;
}

const PRIVATE_KEY = "EXAMPLE+PRIVATE+KEY+replace+with+your+ownxA=";
const PEER_KEY = "EXAMPLE+PEER+PUBLIC+KEY+from+your+providerA=";
/** A profile stored before the cases run, whose interface name vns-abcdef-d682 the clash cases reuse. */
const LONG_PROFILE = "abcdefghijkl";
/** The user that `root-only-link` reads as, through the SUDO_UID that sudo sets. */
const NOBODY = { SUDO_UID: "65534", SUDO_GID: "65534", SUDO_USER: "nobody" };

const CASES = JSON.parse(await readFile(join(FIXTURES, "cases.json"), "utf8")) as BadInputCase[];

/** Returns a distinct valid WireGuard key for peer number `index`. */
function peerKey(index: number): string {
  const bytes = Buffer.alloc(32);
  bytes.writeUInt32BE(index + 1);
  return bytes.toString("base64");
}

function validConf(peers: number): string {
  const lines = ["[Interface]", `PrivateKey = ${PRIVATE_KEY}`, "Address = 192.0.2.2/32"];
  for (let index = 0; index < peers; index++) lines.push("[Peer]", `PublicKey = ${peerKey(index)}`, "AllowedIPs = 198.18.0.0/15");
  return `${lines.join("\n")}\n`;
}

function validProfileJson(name: string, peers = 1): string {
  const peerList = Array.from({ length: peers }, (_, index) => ({ publicKey: index === 0 ? PEER_KEY : peerKey(index), allowedIPs: ["0.0.0.0/0"] }));
  const profile = { name, interface: { privateKey: PRIVATE_KEY, addresses: ["192.0.2.2/32"], dns: [], dnsSearch: [] }, peers: peerList };
  return `${JSON.stringify(profile, null, "\t")}\n`;
}

/** Bytes of a fixed pseudo-random sequence (a linear congruential generator), the same on every run. */
function junkBytes(length: number): Buffer {
  const bytes = Buffer.alloc(length);
  let state = 12345;
  for (let index = 0; index < length; index++) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    bytes[index] = state >> 16;
  }
  return bytes;
}

interface CasePaths {
  work: string;
  input: string;
  config: string;
  profiles: string;
}

function fill(text: string, paths: CasePaths): string {
  return text
    .replaceAll("{input}", paths.input)
    .replaceAll("{work}", paths.work)
    .replaceAll("{profiles}", paths.profiles)
    .replaceAll("{config}", paths.config);
}

/** Creates the recipe's input at {input}, in the profiles folder or in {work}. */
async function makeRecipe(recipe: Recipe, paths: CasePaths, profile: string): Promise<void> {
  const profileFile = join(paths.profiles, `${profile}.json`);
  switch (recipe) {
    case "huge-conf":
      // A valid file grown past the 1 MiB limit with comment lines.
      await writeFile(paths.input, validConf(1) + `# ${"x".repeat(78)}\n`.repeat(13_108), { mode: 0o600 });
      return;
    case "binary-junk":
      await writeFile(paths.input, junkBytes(4096), { mode: 0o600 });
      return;
    case "nul-junk":
      await writeFile(paths.input, Buffer.alloc(65_536), { mode: 0o600 });
      return;
    case "many-peers":
      await writeFile(paths.input, validConf(1001), { mode: 0o600 });
      return;
    case "long-line":
      await writeFile(paths.input, `# ${"x".repeat(5000)}\n${validConf(1)}`, { mode: 0o600 });
      return;
    case "fifo":
      await execa("mkfifo", ["-m", "600", paths.input]);
      return;
    case "directory":
      await mkdir(paths.input);
      return;
    case "dev-zero":
      return;
    case "dev-zero-link":
      await symlink("/dev/zero", paths.input);
      return;
    case "dangling-link":
      await symlink(join(paths.work, "nowhere.conf"), paths.input);
      return;
    case "link-loop":
      await symlink(paths.input, paths.input);
      return;
    case "root-only-link": {
      const target = join(paths.work, "root-only.conf");
      await writeFile(target, validConf(1), { mode: 0o600 });
      await symlink(target, paths.input);
      return;
    }
    case "json-huge":
      await writeFile(profileFile, validProfileJson(profile) + " ".repeat(4 * 1024 * 1024), { mode: 0o600 });
      return;
    case "json-many-peers":
      await writeFile(profileFile, validProfileJson(profile, 1001), { mode: 0o600 });
      return;
    case "json-fifo":
      await execa("mkfifo", ["-m", "600", profileFile]);
      return;
    case "json-directory":
      await mkdir(profileFile, { mode: 0o700 });
      return;
    case "json-symlink": {
      const target = join(paths.work, `${profile}.json`);
      await writeFile(target, validProfileJson(profile), { mode: 0o600 });
      await symlink(target, profileFile);
      return;
    }
    case "json-loose-mode":
      await writeFile(profileFile, validProfileJson(profile), { mode: 0o644 });
      await chmod(profileFile, 0o644);
      return;
    case "json-group-readable":
      await writeFile(profileFile, validProfileJson(profile), { mode: 0o640 });
      await chmod(profileFile, 0o640);
      return;
    case "json-interface-clash":
      await writeFile(join(paths.profiles, "abcdef-d682.json"), validProfileJson("abcdef-d682"), { mode: 0o600 });
      return;
    case "config-file":
      await writeFile(join(paths.work, "config-file"), "not a folder\n");
      return;
    case "settings-fifo":
      await execa("mkfifo", ["-m", "600", join(paths.config, "settings.json")]);
      return;
    case "apps-fifo":
      await execa("mkfifo", ["-m", "600", join(paths.config, "apps.json")]);
      return;
    case "settings-directory":
      await mkdir(join(paths.config, "settings.json"));
      return;
    case "apps-symlink": {
      const target = join(paths.work, "apps.json");
      await writeFile(target, '{"apps": {}}\n', { mode: 0o600 });
      await symlink(target, join(paths.config, "apps.json"));
      return;
    }
    case "settings-huge":
      await writeFile(join(paths.config, "settings.json"), `{}${" ".repeat(1024 * 1024)}`, { mode: 0o600 });
      return;
  }
}

/** Lists a tree: type, mode, size and SHA-256 of each entry, without reading FIFOs or devices. */
async function describeTree(path: string, lines: string[]): Promise<void> {
  let info;
  try {
    info = await lstat(path);
  } catch {
    lines.push(`${path} absent`);
    return;
  }
  const mode = (info.mode & 0o7777).toString(8);
  if (info.isSymbolicLink()) {
    lines.push(`${path} link -> ${await readlink(path)}`);
  } else if (info.isDirectory()) {
    lines.push(`${path} folder ${mode}`);
    for (const entry of (await readdir(path)).sort()) await describeTree(join(path, entry), lines);
  } else if (info.isFile()) {
    // A namespace file bound into the state folder (the profile's mount namespace) reads as EINVAL.
    const content = await readFile(path).catch((error: NodeJS.ErrnoException) => (error.code === "EINVAL" ? undefined : Promise.reject(error)));
    const digest = content === undefined ? "namespace" : createHash("sha256").update(content).digest("hex");
    lines.push(`${path} file ${mode} ${info.size} ${digest}`);
  } else {
    lines.push(`${path} special ${mode}`);
  }
}

/** The machine's network state in one shell run: namespaces, links, the nftables ruleset and wireguard-go daemons. */
const MACHINE_STATE_SCRIPT = [
  "ip netns list",
  // Only names and flags of links: counters and queue lengths change with any traffic.
  "ip -o link show | cut -d' ' -f2,3",
  "nft list ruleset",
  // Daemons of other sandboxes on the machine live in other network namespaces.
  'for pid in $(pgrep -x wireguard-go); do [ "$(readlink /proc/$pid/ns/net)" = "$(readlink /proc/self/ns/net)" ] && echo "$pid $(tr "\\0" " " </proc/$pid/cmdline)"; done; true',
].join("; echo --; ");

/** Everything a bad input must leave as it was: vpnns's folders, the case's input and the machine's network state. */
async function snapshot(folders: string[]): Promise<string> {
  const lines: string[] = [];
  for (const folder of [...folders, "/etc/netns"]) await describeTree(folder, lines);
  const machine = await execa("sh", ["-c", MACHINE_STATE_SCRIPT], { reject: false, all: true });
  return [...lines, machine.all].join("\n");
}

describe.skipIf(!sandboxed)(`bad input (${sandboxed ? "sandboxed" : SKIP_REASON})`, () => {
  let root: string;
  /** The profile files every case starts with: "good" and LONG_PROFILE, imported from valid.conf. */
  let storedProfiles: string;

  beforeAll(async () => {
    root = await mkdtemp("/run/vpnns/bad-input-");
    const dirs = await makeDirs("bad-input");
    const valid = join(root, "valid.conf");
    await copyFile(join(FIXTURES, "valid.conf"), valid);
    await chmod(valid, 0o600);
    for (const name of ["good", LONG_PROFILE]) {
      const result = await vpnns(dirs, ["profile", "import", valid, "--name", name]);
      expect(result.stderr).toContain(`imported profile ${name}`);
    }
    storedProfiles = join(dirs.configDir, "profiles");
  });

  it("has at least 50 cases with distinct ids", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(50);
    expect(new Set(CASES.map((entry) => entry.id)).size).toBe(CASES.length);
  });

  // Cases run at once (vitest's maxConcurrency, 5 by default), because each has its own folders and
  // none may change the machine's network state.
  describe.concurrent("cases", () => {
    it.for(CASES.map((entry) => [entry.id, entry] as const))("%s", async ([, entry], { expect }) => {
      const work = join(root, entry.id.replace(/[^a-z0-9]+/gi, "-"));
      const dirs: TestDirs = { configDir: join(work, "config"), stateDir: join(work, "state") };
      const inputName = entry.confName ?? (entry.conf !== undefined ? entry.conf.split("/").pop()! : "input.conf");
      const paths: CasePaths = {
        work,
        input: entry.recipe === "dev-zero" ? "/dev/zero" : join(work, inputName),
        config: dirs.configDir,
        profiles: join(dirs.configDir, "profiles"),
      };
      await mkdir(paths.profiles, { recursive: true, mode: 0o700 });
      await chmod(dirs.configDir, 0o700);
      for (const file of await readdir(storedProfiles)) await copyFile(join(storedProfiles, file), join(paths.profiles, file));
      const unitFolder = join(work, "units");
      await mkdir(unitFolder);

      const profile = entry.profile ?? "hand";
      if (entry.conf !== undefined) {
        await copyFile(join(FIXTURES, entry.conf), paths.input);
        await chmod(paths.input, 0o600);
      }
      if (entry.profileJson !== undefined) {
        // latin1 keeps every byte, so fixtures that are not valid UTF-8 stay as they are.
        const text = (await readFile(join(FIXTURES, entry.profileJson), "latin1")).replaceAll('"NAME"', JSON.stringify(profile));
        await writeFile(join(paths.profiles, `${profile}.json`), text, { encoding: "latin1", mode: 0o600 });
      }
      if (entry.configJson !== undefined) {
        await writeFile(join(paths.config, entry.configName ?? "settings.json"), await readFile(join(FIXTURES, entry.configJson)), { mode: 0o600 });
      }
      if (entry.recipe !== undefined) await makeRecipe(entry.recipe, paths, profile);

      const env: Record<string, string> = { VPNNS_SYSTEMD_DIR: unitFolder, ...(entry.recipe === "root-only-link" ? NOBODY : {}) };
      for (const [name, value] of Object.entries(entry.env ?? {})) env[name] = fill(value, paths);
      // A relative folder variable would name a folder under the working folder of the test.
      const variableFolders = Object.values(entry.env ?? {}).map((value) => resolve(fill(value, paths)));
      const folders = [work, join(homedir(), ".local/share/applications"), ...variableFolders];

      const before = await snapshot(folders);
      const result = await vpnns(dirs, entry.args.map((arg) => fill(arg, paths)), { env, timeout: 30_000 });
      const after = await snapshot(folders);

      expect(result.timedOut).toBe(false);
      expect(result.stderr).toBe(fill(entry.message, paths));
      expect(result.exitCode).toBe(entry.exitCode);
      expect(after).toBe(before);
    });
  });
});

/**
 * Two profiles whose names shorten to one interface name, as a profile file copied by hand can
 * make. While one is up, commands on the other must fail without touching the tunnel of the first,
 * which `down` finds by interface name.
 */
describe.skipIf(!sandboxed)(`interface name clash (${sandboxed ? "sandboxed" : SKIP_REASON})`, () => {
  const upProfile = "clashlongname1";
  const link = interfaceName(upProfile);
  /** The short name that is its own interface name, and equals the shortened name of upProfile. */
  const copiedProfile = link.slice("vns-".length);
  let lab: Lab;
  let dirs: TestDirs;

  beforeAll(async () => {
    const labModule = (await import("../../dist/lab/lab.js")) as typeof import("../../src/lab/lab.js");
    lab = await labModule.createLab();
    dirs = await makeDirs("bad-input-clash");
    await importClient(dirs, lab, upProfile);
    const up = await vpnns(dirs, ["up", upProfile]);
    expect(up.exitCode, up.all).toBe(0);
    const profiles = join(dirs.configDir, "profiles");
    const stored = JSON.parse(await readFile(join(profiles, `${upProfile}.json`), "utf8")) as { name: string };
    stored.name = copiedProfile;
    await writeFile(join(profiles, `${copiedProfile}.json`), JSON.stringify(stored), { mode: 0o600 });
  });

  afterAll(async () => {
    if (dirs !== undefined) await vpnns(dirs, ["down", upProfile]);
    await lab?.destroy();
  });

  async function tunnelState(): Promise<string> {
    const status = await vpnns(dirs, ["status", upProfile, "--json"]);
    return `${(JSON.parse(status.stdout) as { state: string }).state}\n${await snapshot([dirs.stateDir, `/etc/netns/vpnns-${upProfile}`])}`;
  }

  it("names differ but interfaces clash", () => {
    expect(copiedProfile).not.toBe(upProfile);
    expect(interfaceName(copiedProfile)).toBe(link);
  });

  it("down of the copy leaves the tunnel", async () => {
    const before = await tunnelState();
    const result = await vpnns(dirs, ["down", copiedProfile]);
    expect(result.stderr).toBe(
      `vpnns: profile ${copiedProfile} is not up, and its interface name ${link} belongs to profile ${upProfile}, which is up; ` +
        `nothing was removed. To take that one down, run: vpnns down ${upProfile}`,
    );
    expect(result.exitCode).toBe(2);
    expect(await tunnelState()).toBe(before);
    expect(before.startsWith("up\n")).toBe(true);
  });

  it("up of the copy leaves the tunnel", async () => {
    const before = await tunnelState();
    const result = await vpnns(dirs, ["up", copiedProfile]);
    expect(result.stderr).toBe(
      `vpnns: invalid profile name "${copiedProfile}": its interface name ${link} is also that of profile ${upProfile}; ` +
        "import one of them again under another name with --name, then remove the old one",
    );
    expect(result.exitCode).toBe(2);
    expect(await tunnelState()).toBe(before);
  });
});
