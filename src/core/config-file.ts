/**
 * Checks for the JSON files of the config folder besides profiles (settings.json, apps.json),
 * which can be edited by hand. A FIFO there would block a synchronous read for good, even
 * against SIGTERM, because signal handlers cannot run while the main thread waits.
 */
import { lstatSync } from "node:fs";
import { UsageError } from "./errors.js";

/** Maximum size of settings.json and apps.json in bytes, far above what any real file needs. */
export const MAX_CONFIG_JSON_BYTES = 1024 * 1024;

/**
 * Return whether `file` exists, and throw a UsageError that names `role` unless it is a regular
 * file, not a symbolic link, of at most MAX_CONFIG_JSON_BYTES. Call it before reading the file.
 */
export function checkConfigJsonFile(file: string, role: string): boolean {
  let info;
  try {
    info = lstatSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
  if (!info.isFile()) {
    const kind = info.isSymbolicLink() ? "a symbolic link" : "not a regular file";
    throw new UsageError(`invalid ${role} ${file}: ${kind}; replace it with a regular JSON file or delete it`);
  }
  if (info.size > MAX_CONFIG_JSON_BYTES) {
    throw new UsageError(`invalid ${role} ${file}: ${info.size} bytes, at most ${MAX_CONFIG_JSON_BYTES} are allowed; fix or delete the file`);
  }
  return true;
}
