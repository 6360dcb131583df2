/**
 * Shared setup of the app, desktop and session tests: a non-root test user and stand-in programs.
 * The user is appended to /etc/passwd and /etc/group, which the sandbox overlays with a private
 * tmpfs, and its home lies under /run/vpnns, the sandbox's own tmpfs: nothing reaches the machine's
 * user database or /home.
 */
import { execa } from "execa";
import { appendFile, chmod, chown, mkdir, readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

/** The stand-in single-instance app (see its header). */
export const INSTANCE_APP = fileURLToPath(new URL("../fixtures/single-instance-app/instance-app.cjs", import.meta.url));
export const DESKTOP_FIXTURES = fileURLToPath(new URL("../fixtures/desktop/", import.meta.url));

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** Variables that make vpnns, run as root, treat the test user as the one who invoked it through sudo. */
export function sudoEnv(user: TestUser): Record<string, string> {
  return { SUDO_UID: String(user.uid), SUDO_GID: String(user.gid), SUDO_USER: user.name };
}

async function isTaken(database: "passwd" | "group", key: string): Promise<boolean> {
  return (await execa("getent", [database, key], { reject: false })).exitCode === 0;
}

/**
 * Create a user with a home folder under /run/vpnns. Throws outside the sandbox, where /etc is the
 * machine's own, and when the name exists already.
 */
export async function createTestUser(name: string): Promise<TestUser> {
  if (process.env.VPNNS_SANDBOX !== "1") throw new Error("createTestUser runs only inside test/sandbox.sh, where /etc is a private overlay");
  if (await isTaken("passwd", name)) throw new Error(`user ${name} exists already`);
  let id = 61_000 + (process.pid % 2000);
  while ((await isTaken("passwd", String(id))) || (await isTaken("group", String(id)))) id++;

  const home = join("/run/vpnns", `home-${name}`);
  await appendFile("/etc/passwd", `${name}:x:${id}:${id}:vpnns test user:${home}:/bin/sh\n`);
  await appendFile("/etc/group", `${name}:x:${id}:\n`);
  await mkdir(home, { recursive: true, mode: 0o700 });
  await chown(home, id, id);
  return { name, uid: id, gid: id, home };
}

/** Create a folder that every user may enter and read, with its missing parents. */
export async function publicFolder(path: string): Promise<string> {
  await mkdir(path, { recursive: true, mode: 0o755 });
  await chmod(path, 0o755);
  return path;
}

/**
 * Install the stand-in single-instance app as `folder/name`: a script whose first line names node
 * itself, so the kernel names its process `name` (cut to 15 characters), like the real program.
 */
export async function installInstanceApp(folder: string, name: string): Promise<string> {
  const path = join(folder, name);
  await writeFile(path, `#!${process.execPath}\n${await readFile(INSTANCE_APP, "utf8")}`, { mode: 0o755 });
  await chmod(path, 0o755);
  return path;
}
