import dgram from "node:dgram";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ANSWER_TTL,
  buildResponse,
  decodeHeader,
  decodeName,
  decodeQuestion,
  DnsFormatError,
  encodeName,
  encodeQuery,
  HEADER_LENGTH,
  ipv4ToBytes,
  ipv6ToBytes,
  RecordClass,
  RecordType,
  ResponseCode,
  startDnsServer,
  type DnsServer,
  type Zone,
} from "../../src/lab/dns-server.js";

const ZONE: Zone = new Map([
  ["web.vpnns.test", { a: ["192.0.2.1"], aaaa: ["2001:db8:2::1"] }],
  ["host.vpnns.test", { a: ["198.18.0.1"], aaaa: ["2001:db8:1::1"] }],
]);

const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;

/** Builds a message from a header and raw body bytes, for queries that encodeQuery cannot express. */
function rawMessage(header: { id?: number; flags?: number; qd?: number; an?: number }, body: number[] | Buffer = []): Buffer {
  const start = Buffer.alloc(HEADER_LENGTH);
  start.writeUInt16BE(header.id ?? 0x1234, 0);
  start.writeUInt16BE(header.flags ?? FLAG_RD, 2);
  start.writeUInt16BE(header.qd ?? 1, 4);
  start.writeUInt16BE(header.an ?? 0, 6);
  return Buffer.concat([start, Buffer.from(body)]);
}

/** Reads the answers of a response whose question section is `questionLength` bytes long. */
function readAnswers(response: Buffer, questionLength: number): Array<{ name: number; type: number; class: number; ttl: number; data: Buffer }> {
  const answers = [];
  let offset = HEADER_LENGTH + questionLength;
  for (let index = 0; index < response.readUInt16BE(6); index++) {
    const length = response.readUInt16BE(offset + 10);
    answers.push({
      name: response.readUInt16BE(offset),
      type: response.readUInt16BE(offset + 2),
      class: response.readUInt16BE(offset + 4),
      ttl: response.readUInt32BE(offset + 6),
      data: response.subarray(offset + 12, offset + 12 + length),
    });
    offset += 12 + length;
  }
  expect(offset).toBe(response.length);
  return answers;
}

function respond(query: Buffer, maxLength?: number): Buffer {
  const response = buildResponse(query, ZONE, maxLength);
  if (response === undefined) throw new Error("expected a response, got none");
  return response;
}

describe("encodeName", () => {
  it("encodes labels with length bytes", () => {
    expect([...encodeName("web.vpnns.test")]).toEqual([3, 119, 101, 98, 5, 118, 112, 110, 110, 115, 4, 116, 101, 115, 116, 0]);
  });

  it("ignores one trailing dot", () => {
    expect(encodeName("web.vpnns.test.")).toEqual(encodeName("web.vpnns.test"));
  });

  it("encodes the root as one zero byte", () => {
    expect([...encodeName("")]).toEqual([0]);
    expect([...encodeName(".")]).toEqual([0]);
  });

  it("rejects empty and long labels", () => {
    expect(() => encodeName("a..b")).toThrow(DnsFormatError);
    expect(() => encodeName(`${"a".repeat(64)}.test`)).toThrow(DnsFormatError);
  });

  it("rejects names over 255 bytes", () => {
    const name = Array.from({ length: 5 }, () => "a".repeat(60)).join(".");
    expect(() => encodeName(name)).toThrow(DnsFormatError);
  });
});

describe("encodeQuery and decodeHeader", () => {
  it("round-trip a query header", () => {
    const query = encodeQuery(0xbeef, "web.vpnns.test", RecordType.AAAA);
    const header = decodeHeader(query);
    expect(header.id).toBe(0xbeef);
    expect(header.isResponse).toBe(false);
    expect(header.opcode).toBe(0);
    expect(header.recursionDesired).toBe(true);
    expect(header.questionCount).toBe(1);
    expect(header.answerCount).toBe(0);
    expect(header.authorityCount).toBe(0);
    expect(header.additionalCount).toBe(0);
  });

  it("put type and class after the name", () => {
    const query = encodeQuery(1, "a.test", RecordType.A);
    expect([...query.subarray(HEADER_LENGTH)]).toEqual([1, 97, 4, 116, 101, 115, 116, 0, 0, 1, 0, 1]);
  });

  it("rejects a message shorter than the header", () => {
    expect(() => decodeHeader(Buffer.alloc(11))).toThrow(DnsFormatError);
  });
});

describe("decodeName", () => {
  it("follows a compression pointer backwards", () => {
    // "test" at offset 0, then "web" followed by a pointer to offset 0.
    const message = Buffer.from([4, 116, 101, 115, 116, 0, 3, 119, 101, 98, 0xc0, 0x00]);
    const { labels, end } = decodeName(message, 6);
    expect(labels.map((label) => label.toString())).toEqual(["web", "test"]);
    expect(end).toBe(12);
  });

  it("rejects a pointer to itself", () => {
    expect(() => decodeName(Buffer.from([0xc0, 0x00]), 0)).toThrow(DnsFormatError);
  });

  it("rejects a forward pointer", () => {
    expect(() => decodeName(Buffer.from([0xc0, 0x02, 0]), 0)).toThrow(DnsFormatError);
  });

  it("rejects a label past the end", () => {
    expect(() => decodeName(Buffer.from([5, 97, 98]), 0)).toThrow(DnsFormatError);
  });

  it("rejects a missing terminating zero", () => {
    expect(() => decodeName(Buffer.from([1, 97]), 0)).toThrow(DnsFormatError);
  });

  it("rejects extended label types", () => {
    expect(() => decodeName(Buffer.from([0x41, 0]), 0)).toThrow(DnsFormatError);
    expect(() => decodeName(Buffer.from([0x81, 0]), 0)).toThrow(DnsFormatError);
  });

  it("rejects names over 255 bytes", () => {
    const labels = Array.from({ length: 5 }, () => [60, ...Buffer.alloc(60, 97)]).flat();
    expect(() => decodeName(Buffer.from([...labels, 0]), 0)).toThrow(DnsFormatError);
  });
});

describe("decodeQuestion", () => {
  it("escapes dots and bytes outside printable ASCII", () => {
    const message = Buffer.from([3, 97, 46, 98, 2, 0x20, 0xff, 0, 0, 1, 0, 1]);
    const { question, end } = decodeQuestion(message, 0);
    expect(question.name).toBe("a\\.b.\\032\\255");
    expect(question.type).toBe(RecordType.A);
    expect(question.class).toBe(RecordClass.IN);
    expect(end).toBe(message.length);
  });

  it("rejects a question without type and class", () => {
    expect(() => decodeQuestion(Buffer.from([1, 97, 0, 0, 1]), 0)).toThrow(DnsFormatError);
  });
});

describe("address conversion", () => {
  it.each([
    ["2001:db8:2::1", "20010db8000200000000000000000001"],
    ["::", "00000000000000000000000000000000"],
    ["::1", "00000000000000000000000000000001"],
    ["fe80::", "fe800000000000000000000000000000"],
    ["2001:db8:0:0:1:0:0:1", "20010db8000000000001000000000001"],
    ["::ffff:192.0.2.1", "00000000000000000000ffffc0000201"],
  ])("converts %s", (address, hex) => {
    expect(ipv6ToBytes(address).toString("hex")).toBe(hex);
  });

  it("converts IPv4", () => {
    expect([...ipv4ToBytes("198.18.0.1")]).toEqual([198, 18, 0, 1]);
  });

  it("rejects invalid addresses", () => {
    expect(() => ipv6ToBytes("2001:db8::1::2")).toThrow(TypeError);
    expect(() => ipv4ToBytes("198.18.0")).toThrow(TypeError);
  });
});

describe("buildResponse", () => {
  const questionLength = encodeName("web.vpnns.test").length + 4;

  it("answers A for the service name", () => {
    const query = encodeQuery(0x4242, "web.vpnns.test", RecordType.A);
    const response = respond(query);
    const header = decodeHeader(response);
    expect(header.id).toBe(0x4242);
    expect(header.flags).toBe(FLAG_QR | FLAG_AA | FLAG_RD);
    expect(header.questionCount).toBe(1);
    expect(header.answerCount).toBe(1);
    expect(response.subarray(HEADER_LENGTH, HEADER_LENGTH + questionLength)).toEqual(query.subarray(HEADER_LENGTH));

    const [answer] = readAnswers(response, questionLength);
    expect(answer?.name).toBe(0xc00c);
    expect(answer?.type).toBe(RecordType.A);
    expect(answer?.class).toBe(RecordClass.IN);
    expect(answer?.ttl).toBe(ANSWER_TTL);
    expect([...(answer?.data ?? [])]).toEqual([192, 0, 2, 1]);
  });

  it("answers AAAA for the service name", () => {
    const response = respond(encodeQuery(7, "web.vpnns.test", RecordType.AAAA));
    const answers = readAnswers(response, questionLength);
    expect(answers).toHaveLength(1);
    expect(answers[0]?.type).toBe(RecordType.AAAA);
    expect(answers[0]?.data.toString("hex")).toBe("20010db8000200000000000000000001");
  });

  it("answers the host name with the host-side address", () => {
    const response = respond(encodeQuery(8, "host.vpnns.test", RecordType.A));
    const answers = readAnswers(response, encodeName("host.vpnns.test").length + 4);
    expect([...(answers[0]?.data ?? [])]).toEqual([198, 18, 0, 1]);
  });

  it("matches names case-insensitively and echoes the case", () => {
    const query = encodeQuery(9, "WeB.VPNNS.test", RecordType.A);
    const response = respond(query);
    expect(decodeHeader(response).answerCount).toBe(1);
    expect(response.subarray(HEADER_LENGTH, HEADER_LENGTH + questionLength)).toEqual(query.subarray(HEADER_LENGTH));
  });

  it("answers both families for ANY", () => {
    const response = respond(encodeQuery(10, "web.vpnns.test", RecordType.ANY));
    const types = readAnswers(response, questionLength).map((answer) => answer.type);
    expect(types).toEqual([RecordType.A, RecordType.AAAA]);
  });

  it("returns NXDOMAIN for unknown names", () => {
    const query = encodeQuery(11, "other.vpnns.test", RecordType.A);
    const response = respond(query);
    const header = decodeHeader(response);
    expect(header.responseCode).toBe(ResponseCode.NXDOMAIN);
    expect(header.flags & FLAG_AA).toBe(FLAG_AA);
    expect(header.answerCount).toBe(0);
    expect(header.questionCount).toBe(1);
    expect(response.subarray(HEADER_LENGTH)).toEqual(query.subarray(HEADER_LENGTH));
  });

  it("returns no data for other types", () => {
    const response = respond(encodeQuery(12, "web.vpnns.test", 15));
    const header = decodeHeader(response);
    expect(header.responseCode).toBe(ResponseCode.NOERROR);
    expect(header.answerCount).toBe(0);
  });

  it("returns no data for a parent name", () => {
    const header = decodeHeader(respond(encodeQuery(13, "vpnns.test", RecordType.A)));
    expect(header.responseCode).toBe(ResponseCode.NOERROR);
    expect(header.answerCount).toBe(0);
  });

  it("returns NOTIMP for other opcodes", () => {
    const status = 2;
    const query = encodeQuery(14, "web.vpnns.test", RecordType.A);
    query.writeUInt16BE((status << 11) | FLAG_RD, 2);
    const response = respond(query);
    const header = decodeHeader(response);
    expect(header.id).toBe(14);
    expect(header.responseCode).toBe(ResponseCode.NOTIMP);
    expect(header.opcode).toBe(status);
    expect(header.isResponse).toBe(true);
    expect(header.answerCount).toBe(0);
    expect(response.subarray(HEADER_LENGTH)).toEqual(query.subarray(HEADER_LENGTH));
  });

  it("returns REFUSED for other classes", () => {
    const chaos = 3;
    const header = decodeHeader(respond(encodeQuery(15, "web.vpnns.test", RecordType.A, chaos)));
    expect(header.responseCode).toBe(ResponseCode.REFUSED);
  });

  it.each([
    ["no question", rawMessage({ qd: 0 })],
    ["two questions", rawMessage({ qd: 2 }, [...encodeName("a.test"), 0, 1, 0, 1, ...encodeName("b.test"), 0, 1, 0, 1])],
    ["a cut-off question", rawMessage({}, [3, 119, 101])],
    ["a question without class", rawMessage({}, [...encodeName("a.test"), 0, 1])],
    ["a pointer loop", rawMessage({}, [0xc0, 12, 0, 1, 0, 1])],
  ])("returns FORMERR for %s", (_, query) => {
    const response = respond(query);
    const header = decodeHeader(response);
    expect(header.id).toBe(0x1234);
    expect(header.responseCode).toBe(ResponseCode.FORMERR);
    expect(header.questionCount).toBe(0);
    expect(response.length).toBe(HEADER_LENGTH);
  });

  it("ignores messages shorter than a header", () => {
    expect(buildResponse(Buffer.from([1, 2, 3]), ZONE)).toBeUndefined();
    expect(buildResponse(Buffer.alloc(0), ZONE)).toBeUndefined();
  });

  it("ignores responses", () => {
    const query = encodeQuery(16, "web.vpnns.test", RecordType.A);
    query.writeUInt16BE(FLAG_QR, 2);
    expect(buildResponse(query, ZONE)).toBeUndefined();
  });

  it("copies a cleared RD flag", () => {
    const query = encodeQuery(17, "web.vpnns.test", RecordType.A);
    query.writeUInt16BE(0, 2);
    expect(decodeHeader(respond(query)).recursionDesired).toBe(false);
  });

  it("ignores additional records such as EDNS", () => {
    const opt = [0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0];
    const query = Buffer.concat([encodeQuery(18, "web.vpnns.test", RecordType.A), Buffer.from(opt)]);
    query.writeUInt16BE(1, 10);
    const header = decodeHeader(respond(query));
    expect(header.answerCount).toBe(1);
    expect(header.additionalCount).toBe(0);
  });

  it("sets TC when the response exceeds maxLength", () => {
    const query = encodeQuery(19, "web.vpnns.test", RecordType.ANY);
    const response = respond(query, HEADER_LENGTH + questionLength + 10);
    const header = decodeHeader(response);
    expect(header.flags & FLAG_TC).toBe(FLAG_TC);
    expect(header.answerCount).toBe(0);
    expect(response.length).toBe(HEADER_LENGTH + questionLength);
  });

  it("survives random messages", () => {
    // A fixed linear congruential generator keeps failures reproducible.
    let seed = 12345;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    for (let round = 0; round < 5000; round++) {
      const message = Buffer.from(Array.from({ length: random() % 80 }, () => random() % 256));
      if (round % 2 === 0 && message.length >= HEADER_LENGTH) message.writeUInt16BE(1, 4);
      expect(() => buildResponse(message, ZONE)).not.toThrow();
    }
  });
});

// Binding sockets, even on loopback, is kept inside the network sandbox like every other test that uses the network.
describe.skipIf(process.env.VPNNS_SANDBOX !== "1")("startDnsServer on loopback (needs test/sandbox.sh)", () => {
  let server: DnsServer;

  beforeAll(async () => {
    server = await startDnsServer({ zone: ZONE, addresses: ["127.0.0.1", "::1"], port: 0 });
  });

  afterAll(async () => {
    await server?.close();
  });

  function listener(protocol: "udp" | "tcp", address: string): number {
    const found = server.listeners.find((entry) => entry.protocol === protocol && entry.address === address);
    if (!found) throw new Error(`no ${protocol} listener on ${address}`);
    return found.port;
  }

  it.each(["127.0.0.1", "::1"])("answers over UDP on %s", async (address) => {
    const socket = dgram.createSocket(net.isIPv6(address) ? "udp6" : "udp4");
    const response = await new Promise<Buffer>((resolve) => {
      socket.once("message", resolve);
      socket.send(encodeQuery(21, "web.vpnns.test", RecordType.A), listener("udp", address), address);
    });
    socket.close();
    expect(decodeHeader(response).id).toBe(21);
    expect(decodeHeader(response).answerCount).toBe(1);
  });

  it("answers two queries in one TCP stream", async () => {
    const frame = (query: Buffer): Buffer => Buffer.concat([Buffer.from([query.length >> 8, query.length & 0xff]), query]);
    const socket = net.createConnection({ host: "127.0.0.1", port: listener("tcp", "127.0.0.1") });
    const stream = Buffer.concat([frame(encodeQuery(31, "web.vpnns.test", RecordType.A)), frame(encodeQuery(32, "nope.test", RecordType.A))]);
    // Split one frame across two writes to check reassembly.
    socket.write(stream.subarray(0, 5));
    socket.write(stream.subarray(5));

    let received = Buffer.alloc(0);
    const responses: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      socket.on("error", reject);
      socket.on("data", (chunk) => {
        received = Buffer.concat([received, chunk]);
        while (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) {
          responses.push(received.subarray(2, 2 + received.readUInt16BE(0)));
          received = received.subarray(2 + received.readUInt16BE(0));
        }
        if (responses.length === 2) resolve();
      });
    });
    socket.destroy();

    expect(responses.map((response) => decodeHeader(response).id)).toEqual([31, 32]);
    expect(decodeHeader(responses[0]!).responseCode).toBe(ResponseCode.NOERROR);
    expect(decodeHeader(responses[1]!).responseCode).toBe(ResponseCode.NXDOMAIN);
  });

  it("keeps serving after a malformed UDP message", async () => {
    const port = listener("udp", "127.0.0.1");
    const socket = dgram.createSocket("udp4");
    const response = await new Promise<Buffer>((resolve) => {
      socket.on("message", (message) => {
        if (decodeHeader(message).id === 41) resolve(message);
      });
      socket.send(Buffer.from([0xff, 0xff, 0xff]), port, "127.0.0.1");
      socket.send(encodeQuery(41, "web.vpnns.test", RecordType.AAAA), port, "127.0.0.1");
    });
    socket.close();
    expect(decodeHeader(response).answerCount).toBe(1);
  });
});
