/** `vpnns demo`: the whole job against a local WireGuard provider, with no VPN account. */
import type { Command } from "commander";
import { addVerboseOption } from "./options.js";

export function registerDemoCommand(program: Command): void {
  addVerboseOption(program.command("demo"))
    .description("show vpnns working end to end against a local WireGuard provider built in private namespaces")
    .action(async () => {
      const { runDemo } = await import("../demo/demo.js");
      process.exitCode = await runDemo();
    });
}
