/** The user an app runs as: the one who invoked vpnns (through sudo), another named user, or root. */
import { userInfo } from "node:os";
import { run } from "../tools/exec.js";
import { UsageError } from "./errors.js";

export interface TargetUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** Look a user up by name or numeric id through NSS (`getent passwd`), so LDAP and sssd users work. */
export async function lookUpUser(nameOrId: string): Promise<TargetUser | undefined> {
  const result = await run(["getent", "passwd", nameOrId], { intent: `look up user ${nameOrId}`, allowFailure: true });
  if (result.failed) return undefined;
  const [name = "", , uid = "", gid = "", , home = "/", shell = "/bin/sh"] = result.stdout.trim().split("\n")[0]!.split(":");
  return { name, uid: Number(uid), gid: Number(gid), home, shell };
}

/**
 * Return the passwd entry of this process's user. os.userInfo() reads it through NSS (getpwuid_r),
 * as getent does, without starting a process. Returns undefined when the user has no entry.
 */
function currentUser(): TargetUser | undefined {
  try {
    const { username, uid, gid, homedir, shell } = userInfo();
    return { name: username, uid, gid, home: homedir, shell: shell ?? "/bin/sh" };
  } catch {
    return undefined;
  }
}

export interface UserChoice {
  /** Run as this user name or id. */
  user?: string;
  /** Run as root even when vpnns was started through sudo. */
  asRoot?: boolean;
}

/**
 * Choose the user for an app: --user, else the user behind sudo (SUDO_UID and SUDO_GID), else the
 * caller itself, which is root when no sudo is involved. Root only when no other user applies.
 */
export async function resolveTargetUser(choice: UserChoice, env: NodeJS.ProcessEnv = process.env): Promise<TargetUser> {
  if (choice.asRoot && choice.user !== undefined) throw new UsageError("--user and --as-root exclude each other: give one of them");
  const requested = choice.asRoot ? "0" : (choice.user ?? env.SUDO_UID ?? String(process.getuid?.() ?? 0));
  const user = requested === String(process.getuid?.()) ? currentUser() : await lookUpUser(requested);
  if (!user) throw new UsageError(`user ${JSON.stringify(requested)} not found in the passwd database; check --user or SUDO_UID`);
  if (!choice.asRoot && choice.user === undefined && env.SUDO_GID !== undefined && /^\d+$/.test(env.SUDO_GID)) {
    return { ...user, gid: Number(env.SUDO_GID) };
  }
  return user;
}
