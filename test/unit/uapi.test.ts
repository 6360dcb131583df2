import { describe, expect, it } from "vitest";
import { keyToHex, parsePeers } from "../../src/tools/uapi.js";

const FIRST = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
const SECOND = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=";
const ZERO_KEY = "0".repeat(64);
const PRIVATE = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

describe("parsePeers", () => {
  const reply = [
    `private_key=${keyToHex(PRIVATE)}`,
    "listen_port=40000",
    `public_key=${keyToHex(FIRST)}`,
    `preshared_key=${ZERO_KEY}`,
    "protocol_version=1",
    "endpoint=198.18.0.2:51820",
    "last_handshake_time_sec=1700000000",
    "last_handshake_time_nsec=250",
    "tx_bytes=260",
    "rx_bytes=92",
    "persistent_keepalive_interval=0",
    "allowed_ip=0.0.0.0/0",
    `public_key=${keyToHex(SECOND)}`,
    `preshared_key=${ZERO_KEY}`,
    "protocol_version=1",
    "last_handshake_time_sec=0",
    "last_handshake_time_nsec=0",
    "tx_bytes=0",
    "rx_bytes=0",
    "persistent_keepalive_interval=0",
    "errno=0",
    "",
  ].join("\n");

  it("reads each peer's figures with its base64 key", () => {
    const [first, second] = parsePeers(reply)!.peers;
    expect(first).toEqual({ publicKey: FIRST, endpoint: "198.18.0.2:51820", latestHandshake: 1700000000, rxBytes: 92, txBytes: 260 });
    expect(second).toEqual({ publicKey: SECOND, endpoint: undefined, latestHandshake: 0, rxBytes: 0, txBytes: 0 });
  });

  it("keeps no private key", () => {
    const parsed = JSON.stringify(parsePeers(reply));
    expect(parsed).not.toContain(PRIVATE);
    expect(parsed).not.toContain(keyToHex(PRIVATE));
  });

  it("reads an interface without peers", () => {
    expect(parsePeers("private_key=" + ZERO_KEY + "\nlisten_port=0\nerrno=0\n")).toEqual({ peers: [] });
  });

  it("rejects a reply with an error", () => {
    expect(parsePeers("errno=-2\n")).toBeUndefined();
    expect(parsePeers("listen_port=0\n")).toBeUndefined();
  });
});
