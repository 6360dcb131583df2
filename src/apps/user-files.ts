/**
 * Files that vpnns, running as root, makes in a user's home: app data folders and desktop launchers.
 * They are made with the user's effective ids, so they belong to the user, and the kernel checks
 * the user's permissions on every path component. A symbolic link in the home therefore cannot make
 * root write where the user could not, and homes on NFS with root squashing still work.
 */
import { chmodSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { VpnnsError } from "../core/errors.js";
import type { TargetUser } from "../core/user.js";

/**
 * Run a synchronous function with the user's effective uid, gid and groups, then switch back to
 * root. Runs it unchanged when vpnns is not root or the user is root. The function must not
 * await anything, because the ids apply to the whole process.
 */
export function asUser<T>(user: TargetUser, action: () => T): T {
  if (process.geteuid?.() !== 0 || user.uid === 0) return action();
  const savedGroups = process.getgroups!();
  const savedGid = process.getegid!();
  try {
    // Node has process.initgroups on POSIX systems, but @types/node 20 does not declare it.
    (process as NodeJS.Process & { initgroups(user: string, extraGroup: number): void }).initgroups(user.name, user.gid);
  } catch {
    // The name is not in the group database: keep only the primary group.
    process.setgroups!([user.gid]);
  }
  process.setegid!(user.gid);
  process.seteuid!(user.uid);
  try {
    return action();
  } finally {
    process.seteuid!(0);
    process.setegid!(savedGid);
    process.setgroups!(savedGroups);
  }
}

/**
 * Return the user's data folder: XDG_DATA_HOME when it is an absolute path and the user is the one
 * who invoked vpnns (whose environment it comes from), else ~/.local/share.
 */
export function userDataHome(user: TargetUser, env: NodeJS.ProcessEnv = process.env): string {
  const invokingUid = env.SUDO_UID ?? String(process.getuid?.() ?? 0);
  const dataHome = env.XDG_DATA_HOME;
  if (dataHome !== undefined && isAbsolute(dataHome) && invokingUid === String(user.uid)) return dataHome;
  return join(user.home, ".local", "share");
}

function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "EACCES" || code === "EPERM" ? `permission denied (${code})` : (error as Error).message;
}

/**
 * Create a folder and its missing parents as the user, with mode 0700, which the XDG Base
 * Directory specification prescribes for new folders. An existing folder is kept but must belong to the user.
 * With `private`, the folder's mode is set to 0700 also when it existed. Returns whether the
 * folder was created.
 */
export function ensureUserFolder(user: TargetUser, folder: string, options: { private?: boolean } = {}): boolean {
  return asUser(user, () => {
    let created: boolean;
    try {
      created = mkdirSync(folder, { recursive: true, mode: 0o700 }) !== undefined;
    } catch (error) {
      throw new VpnnsError(`cannot create folder ${folder} as user ${user.name}: ${describe(error)}`, { cause: error });
    }
    // stat follows a symbolic link, so a folder that the user links elsewhere works when it is theirs.
    const info = statSync(folder);
    if (!info.isDirectory()) throw new VpnnsError(`cannot use ${folder} as a folder for user ${user.name}: it exists and is not a folder`);
    if (info.uid !== user.uid) {
      throw new VpnnsError(`cannot use folder ${folder}: it belongs to uid ${info.uid}, not to user ${user.name} (uid ${user.uid}); remove it or give it to the user`);
    }
    if (options.private && (info.mode & 0o777) !== 0o700) chmodSync(folder, 0o700);
    return created;
  });
}

/**
 * Write a file as the user with the given mode: to a temporary name first, then renamed over the
 * target, so a reader never sees a partial file. Creates the parent folders with ensureUserFolder.
 */
export function writeUserFile(user: TargetUser, file: string, content: string, mode: number): void {
  ensureUserFolder(user, dirname(file));
  asUser(user, () => {
    const temporary = `${file}.${process.pid}.tmp`;
    try {
      writeFileSync(temporary, content, { mode, flag: "wx" });
      // The umask may have removed bits from the mode.
      chmodSync(temporary, mode);
      renameSync(temporary, file);
    } catch (error) {
      rmSync(temporary, { force: true });
      throw new VpnnsError(`cannot write ${file} as user ${user.name}: ${describe(error)}`, { cause: error });
    }
  });
}

/** Remove a file as the user. Returns false when there was no file. */
export function removeUserFile(user: TargetUser, file: string): boolean {
  return asUser(user, () => {
    try {
      rmSync(file);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw new VpnnsError(`cannot remove ${file} as user ${user.name}: ${describe(error)}`, { cause: error });
    }
  });
}
