/**
 * `vpnns desktop` end to end: launchers written into a test user's home under /run/vpnns, based on
 * sample entries in a folder given as XDG_DATA_DIRS, checked with desktop-file-validate (Debian
 * package desktop-file-utils), and removed with --remove. No profile is brought up, but the tests
 * write to the sandbox's private /etc, so they run only inside test/sandbox.sh.
 */
import { execa } from "execa";
import { copyFile, mkdir, readFile, stat, symlink } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it, test } from "vitest";
import { parseDesktopEntry, splitExec, unescapeValue } from "../../src/apps/desktop-entry.js";
import { vpnnsCommand } from "../../src/apps/desktop.js";
import { CLI, SKIP_REASON, makeDirs, sandboxed, vpnns, type TestDirs } from "./helpers.js";
import { DESKTOP_FIXTURES, createTestUser, publicFolder, sudoEnv, type TestUser } from "./app-fixtures.js";

const WGQUICK_FIXTURE = new URL("../fixtures/wgquick/mullvad.conf", import.meta.url).pathname;
const hasValidator = (await execa("sh", ["-c", "command -v desktop-file-validate"], { reject: false })).exitCode === 0;

if (!sandboxed) test.skip(`desktop tests skipped: ${SKIP_REASON}`, () => {});
if (sandboxed && !hasValidator) test.skip("desktop-file-validate checks skipped: install desktop-file-utils", () => {});

describe.runIf(sandboxed)("vpnns desktop", () => {
  let dirs: TestDirs;
  let user: TestUser;
  /** A folder for XDG_DATA_DIRS with applications/firefox.desktop and applications/tricky.desktop. */
  let dataDir: string;
  /**
   * How a launcher starts this vpnns: node and the script, or the script alone once `npm link` has
   * made it executable, or the linked `vpnns` when it is on PATH (test/unit covers each case).
   */
  const vpnnsPrefix = vpnnsCommand(CLI, process.env.PATH ?? "");

  function desktop(args: string[], env: Record<string, string> = {}) {
    return vpnns(dirs, ["desktop", ...args], { env: { ...sudoEnv(user), XDG_DATA_DIRS: dataDir, ...env } });
  }

  function launcherPath(profile: string, app: string, dataHome = join(user.home, ".local/share")): string {
    return join(dataHome, "applications", `vpnns-${profile}-${app}.desktop`);
  }

  /** Run desktop-file-validate and return its output, empty for a valid file. */
  async function validate(file: string): Promise<string> {
    const result = await execa("desktop-file-validate", [file], { reject: false, all: true });
    return `${result.exitCode === 0 ? "" : `exit ${result.exitCode}: `}${result.all ?? ""}`;
  }

  async function execOf(file: string): Promise<string[] | undefined> {
    return splitExec(unescapeValue(parseDesktopEntry(await readFile(file, "utf8")).get("Exec") ?? ""));
  }

  beforeAll(async () => {
    dirs = await makeDirs("desktop");
    const imported = await vpnns(dirs, ["profile", "import", WGQUICK_FIXTURE, "--name", "desk"]);
    if (imported.exitCode !== 0) throw new Error(`profile import failed: ${imported.all}`);
    user = await createTestUser("vpnnsdeskuser");
    dataDir = await publicFolder(`/run/vpnns/desktop-share-${process.pid}`);
    const applications = await publicFolder(join(dataDir, "applications"));
    for (const name of ["firefox.desktop", "tricky.desktop"]) await copyFile(join(DESKTOP_FIXTURES, name), join(applications, name));
  });

  it("writes a launcher from the app's entry", async () => {
    const result = await desktop(["firefox", "--profile", "desk"]);
    expect(result.exitCode, result.all).toBe(0);
    const file = launcherPath("desk", "firefox");
    expect(result.stderr).toContain(`wrote ${file}, based on ${join(dataDir, "applications/firefox.desktop")}`);

    const info = await stat(file);
    expect(info.uid).toBe(user.uid);
    expect(info.gid).toBe(user.gid);
    expect(info.mode & 0o777).toBe(0o644);
    expect((await stat(join(user.home, ".local/share/applications"))).uid).toBe(user.uid);

    const entry = parseDesktopEntry(await readFile(file, "utf8"));
    expect(entry.get("Type")).toBe("Application");
    expect(entry.get("Name")).toBe("Firefox (VPN: desk)");
    expect(entry.get("Name[fr]")).toBe("Navigateur Firefox (VPN: desk)");
    expect(entry.get("Icon")).toBe("firefox");
    expect(entry.get("MimeType")).toBe("text/html;text/xml;application/xhtml+xml;x-scheme-handler/http;x-scheme-handler/https;");
    expect(entry.get("Categories")).toBe("Network;WebBrowser;");
    expect(await execOf(file)).toEqual([...vpnnsPrefix, "run", "--profile", "desk", "--", "firefox", "%u"]);
  });

  it.runIf(hasValidator)("launcher passes desktop-file-validate", async () => {
    expect(await validate(launcherPath("desk", "firefox"))).toBe("");
  });

  it("keeps the tricky Exec arguments", async () => {
    const result = await desktop(["tricky", "--profile", "desk"]);
    expect(result.exitCode, result.all).toBe(0);
    const file = launcherPath("desk", "tricky");
    expect(await execOf(file)).toEqual([...vpnnsPrefix, "run", "--profile", "desk", "--", "/opt/Tricky App/tricky", "--title", 'say "hi" for $5 ` \\ done', "--ratio", "50%%", "%F"]);
    if (hasValidator) expect(await validate(file)).toBe("");
  });

  it("writes a minimal launcher without entry", async () => {
    const result = await desktop(["sometool", "--profile", "desk"]);
    expect(result.exitCode, result.all).toBe(0);
    expect(result.stderr).toContain("no desktop entry of sometool was found");
    expect(result.stderr).toContain("sometool is not on PATH");
    const file = launcherPath("desk", "sometool");
    const entry = parseDesktopEntry(await readFile(file, "utf8"));
    expect(entry.get("Name")).toBe("sometool (VPN: desk)");
    expect(entry.has("Icon")).toBe(false);
    expect(await execOf(file)).toEqual([...vpnnsPrefix, "run", "--profile", "desk", "--", "sometool"]);
    if (hasValidator) expect(await validate(file)).toBe("");
  });

  it("finds an entry by its Exec", async () => {
    // The only entry is named after no app, so only its Exec line "firefox %u" can match.
    const other = await publicFolder(`/run/vpnns/desktop-share-exec-${process.pid}/applications`);
    await copyFile(join(DESKTOP_FIXTURES, "firefox.desktop"), join(other, "org.example.Browser.desktop"));
    const result = await desktop(["firefox", "--profile", "desk"], { XDG_DATA_DIRS: join(other, "..") });
    expect(result.exitCode, result.all).toBe(0);
    expect(result.stderr).toContain(`based on ${join(other, "org.example.Browser.desktop")}`);
  });

  it("uses the app's assigned profile", async () => {
    const set = await vpnns(dirs, ["app", "set", "firefox", "desk"]);
    expect(set.exitCode, set.all).toBe(0);
    const result = await desktop(["firefox"]);
    expect(result.exitCode, result.all).toBe(0);
    expect(result.stderr).toContain(`wrote ${launcherPath("desk", "firefox")}`);
  });

  it("fails without a profile choice", async () => {
    const result = await desktop(["chromium"]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain("no profile given for chromium; stored profiles: desk");
  });

  it("rejects a missing profile", async () => {
    const result = await desktop(["firefox", "--profile", "nosuchprofile"]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain("profile nosuchprofile not found");
  });

  it("rejects an invalid app name", async () => {
    const result = await desktop(["../firefox", "--profile", "desk"]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('invalid app name "../firefox"');
  });

  it("honours XDG_DATA_HOME", async () => {
    const dataHome = join(user.home, "xdg-data");
    const result = await desktop(["firefox", "--profile", "desk"], { XDG_DATA_HOME: dataHome });
    expect(result.exitCode, result.all).toBe(0);
    const file = launcherPath("desk", "firefox", dataHome);
    expect((await stat(file)).uid).toBe(user.uid);
    const removed = await desktop(["firefox", "--profile", "desk", "--remove"], { XDG_DATA_HOME: dataHome });
    expect(removed.exitCode, removed.all).toBe(0);
    expect(existsSync(file)).toBe(false);
  });

  it("--remove removes the launcher", async () => {
    const file = launcherPath("desk", "sometool");
    expect(existsSync(file)).toBe(true);
    const result = await desktop(["sometool", "--profile", "desk", "--remove"]);
    expect(result.exitCode, result.all).toBe(0);
    expect(result.stderr).toContain(`removed ${file}`);
    expect(existsSync(file)).toBe(false);
    const again = await desktop(["sometool", "--profile", "desk", "--remove"]);
    expect(again.exitCode, again.all).toBe(0);
    expect(again.stderr).toContain(`no entry at ${file}; nothing removed`);
  });

  it("writes nowhere the user cannot", async () => {
    // A user who points the applications folder at a root-owned folder must not get a file there.
    const other = await createTestUser("vpnnsdeskother");
    const target = await publicFolder(`/run/vpnns/desktop-root-only-${process.pid}`);
    await mkdir(join(other.home, ".local/share"), { recursive: true });
    await execa("chown", ["-R", `${other.uid}:${other.gid}`, join(other.home, ".local")]);
    await symlink(target, join(other.home, ".local/share/applications"));
    const result = await vpnns(dirs, ["desktop", "firefox", "--profile", "desk"], { env: { ...sudoEnv(other), XDG_DATA_DIRS: dataDir } });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(`it belongs to uid 0, not to user ${other.name}`);
    expect(existsSync(join(target, "vpnns-desk-firefox.desktop"))).toBe(false);
  });
});
