/** `vpnns check`: the self-test of a profile that is up. */
import type { Command } from "commander";
import { addVerboseOption } from "./options.js";
import type { CheckReport } from "../core/check.js";

export function registerCheckCommand(program: Command): void {
  addVerboseOption(program.command("check"))
    .description("test a profile that is up: interfaces, kill-switch, routes, DNS, resolver sockets, handshake and IPv6, with a fix for each failure")
    .argument("<profile>", "profile name")
    .option("--json", "print one JSON document with each check's name, ok, detail and fix")
    .option("--probe <url>", "also fetch this http or https URL from inside, as the invoking user, and show the address the server saw")
    .action(async (name: string, options: { json?: boolean; probe?: string }) => {
      const { checkProfile, parseProbeUrl } = await import("../core/check.js");
      const { loadProfile } = await import("../profile/store.js");
      const { resolveTargetUser } = await import("../core/user.js");
      const probeUrl = options.probe === undefined ? undefined : parseProbeUrl(options.probe);
      const profile = await loadProfile(name);
      const user = await resolveTargetUser({});
      const report = await checkProfile(profile, { user, probeUrl });
      console.log(options.json ? JSON.stringify(report, null, 2) : formatCheckReport(report));
      process.exitCode = report.ok ? 0 : 1;
    });
}

/** Format a check report as one line per check, with the fix indented under each failure. */
export function formatCheckReport(report: CheckReport): string {
  const lines = [`profile ${report.profile}:`];
  for (const check of report.checks) {
    lines.push(`  ${check.ok ? "pass" : "FAIL"}  ${check.name}: ${check.detail}`);
    if (check.fix !== null) lines.push(`        fix: ${check.fix}`);
  }
  const failed = report.checks.filter((check) => !check.ok).length;
  lines.push(failed === 0 ? `all ${report.checks.length} checks passed` : `${failed} of ${report.checks.length} checks failed`);
  return lines.join("\n");
}
