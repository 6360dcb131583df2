import { describe, expect, it } from "vitest";
import { parseBatchOutput, runInNamespaces } from "../../src/tools/netns-batch.js";

/** The host namespace's loopback as `ip -json link show dev lo` prints it, the separator of the outputs. */
const SEPARATOR =
  '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00"}]\n';
const TABLE = "table inet vpnns {\n\tchain output {\n\t\ttype filter hook output priority filter; policy drop;\n\t}\n}\n";
const NO_TABLE = "Error: No such file or directory\nlist table inet vpnns\n                ^^^^^\n";

describe("parseBatchOutput", () => {
  it("splits the outputs of the commands", () => {
    const stdout = `${SEPARATOR}0x1091\n${SEPARATOR}${TABLE}`;
    expect(parseBatchOutput(stdout, "", 2)).toEqual([
      { stdout: "0x1091\n", failed: false },
      { stdout: TABLE, failed: false },
    ]);
  });

  it("marks the commands that ip reports as failed", () => {
    const stdout = `${SEPARATOR}0x1091\n${SEPARATOR}${SEPARATOR}0x1090\n`;
    const stderr = `${NO_TABLE}Command failed -:4\n`;
    const results = parseBatchOutput(stdout, stderr, 3);
    expect(results?.map((result) => result.failed)).toEqual([false, true, false]);
    expect(results?.[1]?.stdout).toBe("");
    expect(results?.[2]?.stdout).toBe("0x1090\n");
  });

  it("rejects the outputs that a namespace deleted midway repeats", () => {
    // The child that could not enter the namespace of line 2 runs lines 3 and 4, and then ip runs them again.
    const stdout = `${SEPARATOR}0x1091\n${SEPARATOR}${SEPARATOR}0x1091\n${SEPARATOR}0x1091\n`;
    const stderr = 'Cannot open network namespace "vpnns-b": No such file or directory\nCommand failed -:4\nCommand failed -:4\n';
    expect(parseBatchOutput(stdout, stderr, 3)).toBeUndefined();
  });

  it("rejects a repeated failure line", () => {
    const stdout = `${SEPARATOR}${SEPARATOR}0x1091\n`;
    expect(parseBatchOutput(stdout, "Command failed -:2\nCommand failed -:2\n", 2)).toBeUndefined();
  });

  it("rejects a failed separator line", () => {
    const stdout = `${SEPARATOR}0x1091\n${SEPARATOR}0x1091\n`;
    expect(parseBatchOutput(stdout, "Command failed -:3\n", 2)).toBeUndefined();
  });

  it("rejects a failure line beyond the batch", () => {
    const stdout = `${SEPARATOR}0x1091\n`;
    expect(parseBatchOutput(stdout, "Command failed -:4\n", 1)).toBeUndefined();
  });

  it("rejects fewer outputs than commands", () => {
    expect(parseBatchOutput(`${SEPARATOR}0x1091\n`, "", 2)).toBeUndefined();
  });

  it("rejects output that does not start with the separator", () => {
    expect(parseBatchOutput(`0x1091\n${SEPARATOR}0x1091\n`, "", 2)).toBeUndefined();
    expect(parseBatchOutput("", "", 1)).toBeUndefined();
  });
});

describe("runInNamespaces", () => {
  it("rejects words that ip would split", async () => {
    for (const word of ["a b", "a#b", '"a"', "a\\b", ""]) {
      await expect(runInNamespaces([{ namespace: "vpnns-a", argv: ["cat", word] }], { intent: "read a file" }), word).rejects.toThrow("invalid word");
    }
    await expect(runInNamespaces([{ namespace: "vpnns a", argv: ["true"] }], { intent: "run true" })).rejects.toThrow('invalid word "vpnns a"');
  });
});
