import { describe, expect, it } from "vitest";
import { encodeFrame, encodeHeader, FrameDecoder, MAX_DATAGRAM, parseHeader, parseSocketOwners } from "../../src/publish/protocol.js";

describe("parseHeader", () => {
  it("parses TCP and UDP headers", () => {
    const tcp = parseHeader(Buffer.concat([encodeHeader({ protocol: "tcp", port: 8080 }), Buffer.from("GET /")]));
    expect(tcp).toEqual({ state: "complete", header: { protocol: "tcp", port: 8080 }, rest: Buffer.from("GET /") });
    const udp = parseHeader(encodeHeader({ protocol: "udp", port: 65535 }));
    expect(udp).toEqual({ state: "complete", header: { protocol: "udp", port: 65535 }, rest: Buffer.alloc(0) });
  });

  it("waits for a partial header", () => {
    expect(parseHeader(Buffer.from("tcp 80"))).toEqual({ state: "incomplete" });
  });

  it("rejects invalid headers", () => {
    for (const text of ["tcp 0\n", "tcp 65536\n", "sctp 80\n", "tcp 080\n", "tcp  80\n"]) {
      expect(parseHeader(Buffer.from(text)).state, text).toBe("invalid");
    }
    expect(parseHeader(Buffer.from("tcp 8080808080"))).toEqual({ state: "invalid", reason: "no header line in the first 10 bytes" });
  });
});

describe("FrameDecoder", () => {
  it("restores datagrams split across chunks", () => {
    const datagrams = [Buffer.from("one"), Buffer.alloc(0), Buffer.alloc(MAX_DATAGRAM, 7), Buffer.from("last")];
    const stream = Buffer.concat(datagrams.map(encodeFrame));
    const decoder = new FrameDecoder();
    const decoded: Buffer[] = [];
    for (let offset = 0; offset < stream.length; offset += 1000) decoded.push(...decoder.push(stream.subarray(offset, offset + 1000)));
    expect(decoded).toEqual(datagrams);
  });

  it("rejects an oversized datagram", () => {
    expect(() => encodeFrame(Buffer.alloc(MAX_DATAGRAM + 1))).toThrow(RangeError);
  });
});

describe("parseSocketOwners", () => {
  it("lists each process once", () => {
    const output = 'LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:(("nginx",pid=813,fd=6),("nginx",pid=812,fd=6))\nLISTEN 0 511 [::]:80 [::]:* users:(("nginx",pid=813,fd=7))\n';
    expect(parseSocketOwners(output)).toBe("nginx (pid 813), nginx (pid 812)");
  });

  it("returns undefined without processes", () => {
    expect(parseSocketOwners("LISTEN 0 511 0.0.0.0:80 0.0.0.0:*\n")).toBeUndefined();
    expect(parseSocketOwners("")).toBeUndefined();
  });
});
