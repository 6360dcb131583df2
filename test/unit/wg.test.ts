import { describe, expect, it } from "vitest";
import { mergeShowFields, parseShowField } from "../../src/tools/wg.js";

const FIRST = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
const SECOND = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=";

describe("wg show fields", () => {
  const handshakes = `${FIRST}\t1700000000\n${SECOND}\t0\n`;
  const endpoints = `${FIRST}\t198.18.0.2:51820\n${SECOND}\t(none)\n`;
  const transfer = `${FIRST}\t1024\t2048\n${SECOND}\t0\t0\n`;

  it("splits one line per peer", () => {
    const peers = parseShowField(transfer);
    expect([...peers.keys()]).toEqual([FIRST, SECOND]);
    expect(peers.get(FIRST)).toEqual(["1024", "2048"]);
  });

  it("merges handshake, endpoint and transfer", () => {
    const [first, second] = mergeShowFields(handshakes, endpoints, transfer).peers;
    expect(first).toEqual({ publicKey: FIRST, endpoint: "198.18.0.2:51820", latestHandshake: 1700000000, rxBytes: 1024, txBytes: 2048 });
    expect(second).toEqual({ publicKey: SECOND, endpoint: undefined, latestHandshake: 0, rxBytes: 0, txBytes: 0 });
  });

  it("reads an interface without peers", () => {
    expect(mergeShowFields("", "", "").peers).toEqual([]);
  });
});
