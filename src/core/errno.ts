/** Plain reasons for the errno codes that file operations report. */

const REASONS: Record<string, string> = {
  ENOTDIR: "a part of the path is not a folder",
  EEXIST: "a file of that name is in the way",
  EISDIR: "it is a folder",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "the file system is read-only",
  ENOSPC: "no space left on the device",
  ELOOP: "too many levels of symbolic links",
  ENAMETOOLONG: "the path is too long",
  ENOENT: "not found",
};

/** Return the reason for a file system error with its errno code, such as "permission denied (EACCES)", else its message. */
export function describeErrno(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === "string" && REASONS[code] !== undefined) return `${REASONS[code]} (${code})`;
  return error instanceof Error ? error.message : String(error);
}
