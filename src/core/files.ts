/** Small file-system queries shared by the domain modules. */
import { stat } from "node:fs/promises";

/** Whether anything exists at the path; errors such as EACCES count as absent. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
