import { describe, expect, it } from "vitest";
import { UsageError } from "../../src/core/errors.js";
import { parseWgQuick } from "../../src/profile/wgquick.js";

const PRIVATE_KEY = "test+private+key00000000000000000000000000A=";
const PEER_KEY = "test+peer+public+key0000000000000000000000A=";

/** Decodes `bytes` the way import reads a file, parses it and returns the UsageError's message. */
function parseBytes(bytes: Buffer): string {
  try {
    parseWgQuick(bytes.toString("utf8"), "wg0.conf");
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as UsageError).message;
  }
  throw new Error("expected parseWgQuick to throw a UsageError");
}

function fileWithLine(extra: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`[Interface]\nPrivateKey = ${PRIVATE_KEY}\nAddress = 192.0.2.2/32\n`),
    extra,
    Buffer.from(`\n[Peer]\nPublicKey = ${PEER_KEY}\nAllowedIPs = 0.0.0.0/0\n`),
  ]);
}

describe("parseWgQuick text encoding", () => {
  it("rejects invalid UTF-8 in a comment", () => {
    const message = parseBytes(fileWithLine(Buffer.from([0x23, 0x20, 0xff, 0xfe])));
    expect(message).toBe(
      "wg0.conf:4: invalid UTF-8 text at column 3 (shown as U+FFFD); a wg-quick file must be plain text, so save it as UTF-8 or ASCII",
    );
  });

  it("rejects a truncated sequence in a value", () => {
    const line = Buffer.concat([Buffer.from("DNS = example"), Buffer.from([0xc3]), Buffer.from(".net")]);
    expect(parseBytes(fileWithLine(line))).toContain("wg0.conf:4: invalid UTF-8 text at column 14");
  });

  it("accepts valid UTF-8 in a comment", () => {
    const text = fileWithLine(Buffer.from("# Zürich server")).toString("utf8");
    expect(parseWgQuick(text, "wg0.conf").config.interface.addresses).toEqual(["192.0.2.2/32"]);
  });
});
