import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { addIsolationOptions, appOfProcessName, identifyProgram, instanceFolder, KNOWN_APPS, knownAppOf } from "../../src/apps/single-instance.js";
import type { TargetUser } from "../../src/core/user.js";

const root = mkdtempSync(join(tmpdir(), "vpnns-single-instance-"));
const FOLDER = "/home/alice/.local/share/vpnns/work/app";

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function executable(name: string, content: string): string {
  const path = join(root, name);
  writeFileSync(path, content);
  chmodSync(path, 0o755);
  return path;
}

describe("addIsolationOptions", () => {
  const firefox = KNOWN_APPS.firefox!;
  const chromium = KNOWN_APPS.chromium!;
  const qbittorrent = KNOWN_APPS.qbittorrent!;

  it("adds Firefox options after the program", () => {
    expect(addIsolationOptions(["firefox", "about:blank"], firefox, FOLDER, {})).toEqual({
      command: ["firefox", "--no-remote", "--profile", FOLDER, "about:blank"],
      added: ["--no-remote", "--profile", FOLDER],
      usesFolder: true,
    });
  });

  it.each([["-P", "work"], ["--profile", "/tmp/p"], ["-profile", "/tmp/p"], ["--ProfileManager"], ["-PROFILE", "/tmp/p"]])("keeps the user's Firefox profile %j", (...flags) => {
    const result = addIsolationOptions(["firefox", ...flags], firefox, FOLDER, {});
    expect(result.added).toEqual(["--no-remote"]);
    expect(result.usesFolder).toBe(false);
    expect(result.command).toEqual(["firefox", "--no-remote", ...flags]);
  });

  it("adds nothing when Firefox has both", () => {
    expect(addIsolationOptions(["firefox", "-no-remote", "-P", "x"], firefox, FOLDER, {}).added).toEqual([]);
  });

  it("adds the user data folder for Chromium", () => {
    expect(addIsolationOptions(["chromium", "--incognito"], chromium, FOLDER, {}).command).toEqual(["chromium", `--user-data-dir=${FOLDER}`, "--incognito"]);
    expect(addIsolationOptions(["chromium", "--user-data-dir=/tmp/c"], chromium, FOLDER, {}).added).toEqual([]);
    expect(addIsolationOptions(["chromium", "-user-data-dir=/tmp/c"], chromium, FOLDER, {}).added).toEqual([]);
    expect(addIsolationOptions(["chromium", "--User-Data-Dir=/tmp/c"], chromium, FOLDER, {}).added).toEqual([`--user-data-dir=${FOLDER}`]);
  });

  it("honours qBittorrent's option and variable", () => {
    expect(addIsolationOptions(["qbittorrent", "file.torrent"], qbittorrent, FOLDER, {}).command).toEqual(["qbittorrent", `--profile=${FOLDER}`, "file.torrent"]);
    expect(addIsolationOptions(["qbittorrent", "--profile=/srv/q"], qbittorrent, FOLDER, {}).added).toEqual([]);
    expect(addIsolationOptions(["qbittorrent"], qbittorrent, FOLDER, { QBT_PROFILE: "/srv/q" }).added).toEqual([]);
  });

  it("skips qBittorrent folders with =", () => {
    const result = addIsolationOptions(["qbittorrent"], qbittorrent, "/home/a=b/q", {});
    expect(result.added).toEqual([]);
    expect(result.usesFolder).toBe(false);
  });
});

describe("knownAppOf", () => {
  it("matches every package name", () => {
    for (const name of ["firefox", "firefox-esr", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "brave-browser", "microsoft-edge", "vivaldi", "qbittorrent"]) {
      expect(knownAppOf([`/usr/bin/${name}`], undefined), name).toBeDefined();
    }
    expect(knownAppOf(["curl"], undefined)).toBeUndefined();
  });

  it("follows a link to the real program", () => {
    const target = executable("firefox-esr", "#!/bin/sh\n");
    const link = join(root, "x-www-browser");
    symlinkSync(target, link);
    expect(knownAppOf([link], link)).toBe(KNOWN_APPS.firefox);
  });
});

describe("instanceFolder", () => {
  const user: TargetUser = { name: "alice", uid: 1000, gid: 1000, home: "/home/alice", shell: "/bin/sh" };

  it("uses the data home of the user", () => {
    expect(instanceFolder(user, "work", KNOWN_APPS["google-chrome-stable"]!, {})).toBe("/home/alice/.local/share/vpnns/work/google-chrome");
  });

  it("honours XDG_DATA_HOME of the invoking user", () => {
    expect(instanceFolder(user, "work", KNOWN_APPS.firefox!, { SUDO_UID: "1000", XDG_DATA_HOME: "/data/alice" })).toBe("/data/alice/vpnns/work/firefox");
    expect(instanceFolder(user, "work", KNOWN_APPS.firefox!, { SUDO_UID: "1001", XDG_DATA_HOME: "/data/bob" })).toBe("/home/alice/.local/share/vpnns/work/firefox");
    expect(instanceFolder(user, "work", KNOWN_APPS.firefox!, { SUDO_UID: "1000", XDG_DATA_HOME: "relative" })).toBe("/home/alice/.local/share/vpnns/work/firefox");
  });
});

describe("identifyProgram", () => {
  it("uses the executable of a binary", () => {
    const program = executable("a-binary-program-name", "\x7fELF");
    expect(identifyProgram([program], program)).toEqual({ names: ["a-binary-progra"], executable: program });
  });

  it("uses names alone for a script", () => {
    const program = executable("launcher.sh", "#!/bin/sh\nexec true\n");
    expect(identifyProgram(["launcher.sh"], program)).toEqual({ names: ["launcher.sh"] });
  });

  it("adds known process names", () => {
    const program = executable("google-chrome", "#!/bin/sh\n");
    expect(identifyProgram(["google-chrome"], program)!.names).toEqual(["google-chrome", "chrome"]);
  });

  it("requires the script for interpreters", () => {
    const python = executable("python3", "\x7fELF");
    expect(identifyProgram([python, "-u", "/opt/tool/app.py", "--x"], python)).toEqual({ names: ["python3"], executable: python, script: "app.py" });
    expect(identifyProgram([python], python)).toBeUndefined();
  });

  it("returns undefined for a missing program", () => {
    expect(identifyProgram(["nothing"], undefined)).toBeUndefined();
    expect(identifyProgram(["nothing"], join(root, "missing"))).toBeUndefined();
  });
});

describe("appOfProcessName", () => {
  it("prefers assigned apps", () => {
    expect(appOfProcessName("instance-app", ["instance-app"])).toBe("instance-app");
    expect(appOfProcessName("google-chrome-s", ["google-chrome-stable"])).toBe("google-chrome-stable");
  });

  it("knows browsers by process name", () => {
    expect(appOfProcessName("firefox-esr", [])).toBe("firefox");
    expect(appOfProcessName("msedge", [])).toBe("microsoft-edge");
    expect(appOfProcessName("sleep", [])).toBeUndefined();
  });
});
