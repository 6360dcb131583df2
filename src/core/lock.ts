/**
 * Per-profile locks, so two vpnns processes never build or tear down one profile at once.
 * The lock is a flock(2) on a file in the state folder. The util-linux `flock` command takes it on
 * a descriptor that this process shares with it. A flock belongs to the open file description, so
 * it outlives that command and ends when this process closes the file or dies, even by SIGKILL.
 */
import { execa } from "execa";
import { mkdir, open, rm, stat, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { profileStateDir, stateDir } from "./paths.js";
import { VpnnsError } from "./errors.js";
import { pathExists } from "./files.js";

export interface Lock {
  release(): Promise<void>;
}

function lockFile(profile: string): string {
  return join(stateDir(), "locks", `${profile}.lock`);
}

/** Take the profile's lock, waiting up to timeoutMs for another vpnns process to release it. */
export async function lockProfile(profile: string, timeoutMs = 120_000): Promise<Lock> {
  const path = lockFile(profile);
  await mkdir(join(stateDir(), "locks"), { recursive: true, mode: 0o700 });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const handle = await open(path, "a", 0o600);
    const seconds = Math.max(0, (deadline - Date.now()) / 1000).toFixed(1);
    const result = await execa("flock", ["--exclusive", "--timeout", seconds, "3"], {
      // execa passes a number in stdio as that file descriptor of this process.
      stdio: ["ignore", "ignore", "pipe", handle.fd as unknown as "pipe"],
      reject: false,
    });
    if (result.exitCode !== 0) {
      await handle.close();
      const reason = result.code === "ENOENT" ? "command not found: flock; install util-linux" : `another vpnns process held it for ${timeoutMs / 1000} s`;
      throw new VpnnsError(`failed to lock profile ${profile} (${path}): ${reason}`);
    }
    // A process that removed the file while this one waited leaves the lock on an orphan inode: retry.
    if (await isSameFile(handle, path)) return { release: () => releaseLock(profile, handle) };
    await handle.close();
  }
}

/**
 * Close the lock file. When the profile has no state folder, it is down or its setup failed, so the
 * file is removed first: otherwise it would be the only trace of the profile left on the machine.
 * It is removed only while the path still names the locked file, because once a holder removed it
 * (as `down` does), the path may name a new file that another process has locked.
 */
async function releaseLock(profile: string, handle: FileHandle): Promise<void> {
  try {
    if (!(await pathExists(profileStateDir(profile))) && (await isSameFile(handle, lockFile(profile)))) await removeLockFile(profile);
  } finally {
    await handle.close();
  }
}

async function isSameFile(handle: FileHandle, path: string): Promise<boolean> {
  try {
    const [held, current] = await Promise.all([handle.stat(), stat(path)]);
    return held.ino === current.ino && held.dev === current.dev;
  } catch {
    return false;
  }
}

/** Run an action while holding the profile's lock. */
export async function withProfileLock<T>(profile: string, action: () => Promise<T>): Promise<T> {
  const lock = await lockProfile(profile);
  try {
    return await action();
  } finally {
    await lock.release();
  }
}

/**
 * Remove the profile's lock file. Call it only while holding the lock: a process waiting on the
 * removed file notices that the path now names another file and locks again.
 */
export async function removeLockFile(profile: string): Promise<void> {
  await rm(lockFile(profile), { force: true });
}
