/** Small file-system queries shared by the domain modules. */
import { stat } from "node:fs/promises";

/** Check whether anything exists at the path. Errors such as EACCES count as absent. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
