/**
 * A minimal authoritative DNS server for the lab's names (RFC 1035 message format), over UDP and
 * TCP. It serves A and AAAA records from a fixed zone, returns NXDOMAIN for unknown names and
 * NOTIMP for opcodes other than QUERY, and never throws on malformed input.
 */
import dgram from "node:dgram";
import net from "node:net";

export const DNS_PORT = 53;
export const HEADER_LENGTH = 12;
/** Largest UDP response without EDNS (RFC 1035 section 4.2.1). Longer responses are sent truncated, with the TC flag. */
export const MAX_UDP_RESPONSE = 512;
/** Time to live of every answer record, in seconds. */
export const ANSWER_TTL = 60;

export const RecordType = { A: 1, AAAA: 28, ANY: 255 } as const;
export const RecordClass = { IN: 1, ANY: 255 } as const;
export const ResponseCode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const OPCODE_QUERY = 0;

const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const MAX_LABEL_LENGTH = 63;
/** Maximum length of an encoded name, including the length bytes and the final zero (RFC 1035 section 2.3.4). */
const MAX_NAME_LENGTH = 255;
/** A compression pointer back to offset 12, where a response's question name starts. */
const POINTER_TO_QUESTION = 0xc00c;

/** Addresses of one name in the zone. */
export interface HostRecords {
  a: readonly string[];
  aaaa: readonly string[];
}

/** Names the server is authoritative for, in lowercase without a trailing dot, such as "web.vpnns.test". */
export type Zone = ReadonlyMap<string, HostRecords>;

export interface DnsHeader {
  id: number;
  /** The 16-bit flags field: QR, opcode, AA, TC, RD, RA, Z and the response code. */
  flags: number;
  isResponse: boolean;
  opcode: number;
  recursionDesired: boolean;
  responseCode: number;
  questionCount: number;
  answerCount: number;
  authorityCount: number;
  additionalCount: number;
}

export interface DnsQuestion {
  /** The name in presentation format without the trailing dot, with "." and "\" in labels escaped. */
  name: string;
  /** The labels as received, so a response can repeat the question byte for byte. */
  labels: Buffer[];
  type: number;
  class: number;
}

/** A message that does not follow the DNS wire format. */
export class DnsFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DnsFormatError";
  }
}

export function decodeHeader(message: Uint8Array): DnsHeader {
  if (message.length < HEADER_LENGTH) {
    throw new DnsFormatError(`message of ${message.length} bytes is shorter than the ${HEADER_LENGTH}-byte header`);
  }
  const view = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const flags = view.readUInt16BE(2);
  return {
    id: view.readUInt16BE(0),
    flags,
    isResponse: (flags & FLAG_QR) !== 0,
    opcode: (flags >> 11) & 0xf,
    recursionDesired: (flags & FLAG_RD) !== 0,
    responseCode: flags & 0xf,
    questionCount: view.readUInt16BE(4),
    answerCount: view.readUInt16BE(6),
    authorityCount: view.readUInt16BE(8),
    additionalCount: view.readUInt16BE(10),
  };
}

/** Formats one label in presentation format: "." and "\" are escaped, and bytes outside printable ASCII become \DDD. */
function formatLabel(label: Buffer): string {
  let text = "";
  for (const byte of label) {
    if (byte === 0x2e || byte === 0x5c) text += `\\${String.fromCharCode(byte)}`;
    else if (byte > 0x20 && byte < 0x7f) text += String.fromCharCode(byte);
    else text += `\\${byte.toString().padStart(3, "0")}`;
  }
  return text;
}

/**
 * Decodes a name at offset, following compression pointers (RFC 1035 section 4.1.4). A pointer must
 * point to an offset below its own, which rules out loops. Returns the labels and the offset
 * just after the name as it appears at offset.
 */
export function decodeName(message: Buffer, offset: number): { labels: Buffer[]; end: number } {
  const labels: Buffer[] = [];
  let position = offset;
  let end: number | undefined;
  let encodedLength = 1;

  for (;;) {
    if (position >= message.length) throw new DnsFormatError(`name at offset ${offset} runs past the end of the message`);
    const length = message[position]!;
    const kind = length & 0xc0;

    if (kind === 0xc0) {
      if (position + 1 >= message.length) throw new DnsFormatError(`compression pointer at offset ${position} is cut off`);
      const target = message.readUInt16BE(position) & 0x3fff;
      if (target >= position) {
        throw new DnsFormatError(`compression pointer at offset ${position} points forward to offset ${target}`);
      }
      end ??= position + 2;
      position = target;
      continue;
    }
    if (kind !== 0) throw new DnsFormatError(`label at offset ${position} has the unsupported type bits 0x${kind.toString(16)}`);
    if (length === 0) break;

    encodedLength += length + 1;
    if (encodedLength > MAX_NAME_LENGTH) {
      throw new DnsFormatError(`name at offset ${offset} is longer than ${MAX_NAME_LENGTH} bytes`);
    }
    if (position + 1 + length > message.length) {
      throw new DnsFormatError(`label at offset ${position} runs past the end of the message`);
    }
    labels.push(message.subarray(position + 1, position + 1 + length));
    position += 1 + length;
  }
  return { labels, end: end ?? position + 1 };
}

/** Decodes the question that starts at offset, and returns it with the offset just after it. */
export function decodeQuestion(message: Buffer, offset: number): { question: DnsQuestion; end: number } {
  const { labels, end: nameEnd } = decodeName(message, offset);
  if (nameEnd + 4 > message.length) throw new DnsFormatError(`question at offset ${offset} is missing its type or class`);
  const question: DnsQuestion = {
    name: labels.map(formatLabel).join("."),
    labels,
    type: message.readUInt16BE(nameEnd),
    class: message.readUInt16BE(nameEnd + 2),
  };
  return { question, end: nameEnd + 4 };
}

/** Encodes labels as a name without compression. */
function encodeLabels(labels: readonly Buffer[]): Buffer {
  return Buffer.concat([...labels.flatMap((label) => [Buffer.from([label.length]), label]), Buffer.from([0])]);
}

/**
 * Encodes a name such as "web.vpnns.test" (a trailing dot is optional) without compression.
 * Escapes are not supported: every "." separates labels.
 */
export function encodeName(name: string): Buffer {
  const trimmed = name.endsWith(".") ? name.slice(0, -1) : name;
  const labels = trimmed === "" ? [] : trimmed.split(".").map((label) => Buffer.from(label, "ascii"));
  for (const label of labels) {
    if (label.length === 0 || label.length > MAX_LABEL_LENGTH) {
      throw new DnsFormatError(`invalid name ${JSON.stringify(name)}: labels must be 1 to ${MAX_LABEL_LENGTH} bytes`);
    }
  }
  const encoded = encodeLabels(labels);
  if (encoded.length > MAX_NAME_LENGTH) {
    throw new DnsFormatError(`invalid name ${JSON.stringify(name)}: longer than ${MAX_NAME_LENGTH} bytes when encoded`);
  }
  return encoded;
}

function encodeHeader(header: Omit<DnsHeader, "isResponse" | "opcode" | "recursionDesired" | "responseCode">): Buffer {
  const buffer = Buffer.alloc(HEADER_LENGTH);
  buffer.writeUInt16BE(header.id, 0);
  buffer.writeUInt16BE(header.flags, 2);
  buffer.writeUInt16BE(header.questionCount, 4);
  buffer.writeUInt16BE(header.answerCount, 6);
  buffer.writeUInt16BE(header.authorityCount, 8);
  buffer.writeUInt16BE(header.additionalCount, 10);
  return buffer;
}

function encodeTypeAndClass(type: number, recordClass: number): Buffer {
  const fields = Buffer.alloc(4);
  fields.writeUInt16BE(type, 0);
  fields.writeUInt16BE(recordClass, 2);
  return fields;
}

/** Encodes a standard query with recursion desired, as a stub resolver sends it. */
export function encodeQuery(id: number, name: string, type: number, recordClass: number = RecordClass.IN): Buffer {
  const header = encodeHeader({ id, flags: FLAG_RD, questionCount: 1, answerCount: 0, authorityCount: 0, additionalCount: 0 });
  return Buffer.concat([header, encodeName(name), encodeTypeAndClass(type, recordClass)]);
}

export function ipv4ToBytes(address: string): Buffer {
  if (!net.isIPv4(address)) throw new TypeError(`invalid IPv4 address ${JSON.stringify(address)}`);
  return Buffer.from(address.split(".").map(Number));
}

/** Converts an IPv6 address, including the "::" and embedded IPv4 forms, to its 16 bytes. */
export function ipv6ToBytes(address: string): Buffer {
  if (!net.isIPv6(address)) throw new TypeError(`invalid IPv6 address ${JSON.stringify(address)}`);
  const toGroups = (part: string): number[] => {
    if (part === "") return [];
    return part.split(":").flatMap((group) => {
      if (!group.includes(".")) return [parseInt(group, 16)];
      const [a, b, c, d] = ipv4ToBytes(group);
      return [(a! << 8) | b!, (c! << 8) | d!];
    });
  };
  const [head = "", tail] = address.split("::");
  const headGroups = toGroups(head);
  const tailGroups = tail === undefined ? [] : toGroups(tail);
  const zeros = new Array<number>(8 - headGroups.length - tailGroups.length).fill(0);
  const bytes = Buffer.alloc(16);
  [...headGroups, ...zeros, ...tailGroups].forEach((group, index) => bytes.writeUInt16BE(group, index * 2));
  return bytes;
}

function encodeAnswer(type: number, data: Buffer): Buffer {
  const record = Buffer.alloc(12);
  record.writeUInt16BE(POINTER_TO_QUESTION, 0);
  record.writeUInt16BE(type, 2);
  record.writeUInt16BE(RecordClass.IN, 4);
  record.writeUInt32BE(ANSWER_TTL, 6);
  record.writeUInt16BE(data.length, 10);
  return Buffer.concat([record, data]);
}

/** Returns the answer records for a name that exists, or undefined when the name does not exist. */
function lookUp(zone: Zone, question: DnsQuestion): Buffer[] | undefined {
  // Only ASCII letters compare case-insensitively (RFC 4343), so escaped bytes keep their case.
  const name = question.name.replace(/[A-Z]/g, (letter) => letter.toLowerCase());
  const records = zone.get(name);
  if (records === undefined) {
    // A name with names below it, such as "vpnns.test", exists but has no records of its own.
    const hasDescendants = [...zone.keys()].some((key) => key.endsWith(`.${name}`));
    return hasDescendants ? [] : undefined;
  }
  const answers: Buffer[] = [];
  if (question.type === RecordType.A || question.type === RecordType.ANY) {
    answers.push(...records.a.map((address) => encodeAnswer(RecordType.A, ipv4ToBytes(address))));
  }
  if (question.type === RecordType.AAAA || question.type === RecordType.ANY) {
    answers.push(...records.aaaa.map((address) => encodeAnswer(RecordType.AAAA, ipv6ToBytes(address))));
  }
  return answers;
}

/**
 * Builds the response to a query message. Returns undefined when no response should be sent: the
 * message is shorter than a header, so it has no ID to copy, or it is itself a response. A response
 * longer than maxLength is replaced by its header and question with the TC flag set.
 */
export function buildResponse(query: Buffer, zone: Zone, maxLength = Number.POSITIVE_INFINITY): Buffer | undefined {
  let header: DnsHeader;
  try {
    header = decodeHeader(query);
  } catch {
    return undefined;
  }
  if (header.isResponse) return undefined;

  // The opcode and RD flag are copied from the query (RFC 1035 section 4.1.1).
  const baseFlags = FLAG_QR | (header.opcode << 11) | (header.recursionDesired ? FLAG_RD : 0);
  const reply = (code: number, question?: DnsQuestion, answers: Buffer[] = [], authoritative = false): Buffer => {
    const flags = baseFlags | (authoritative ? FLAG_AA : 0) | code;
    const questionSection = question
      ? Buffer.concat([encodeLabels(question.labels), encodeTypeAndClass(question.type, question.class)])
      : Buffer.alloc(0);
    const counts = { questionCount: question ? 1 : 0, authorityCount: 0, additionalCount: 0 };
    const full = Buffer.concat([
      encodeHeader({ id: header.id, flags, answerCount: answers.length, ...counts }),
      questionSection,
      ...answers,
    ]);
    if (full.length <= maxLength) return full;
    return Buffer.concat([encodeHeader({ id: header.id, flags: flags | FLAG_TC, answerCount: 0, ...counts }), questionSection]);
  };

  let question: DnsQuestion | undefined;
  let questionError = false;
  if (header.questionCount === 1) {
    try {
      question = decodeQuestion(query, HEADER_LENGTH).question;
    } catch (error) {
      if (!(error instanceof DnsFormatError)) throw error;
      questionError = true;
    }
  }

  if (header.opcode !== OPCODE_QUERY) return reply(ResponseCode.NOTIMP, question);
  if (header.questionCount !== 1 || questionError || question === undefined) return reply(ResponseCode.FORMERR);
  if (question.class !== RecordClass.IN && question.class !== RecordClass.ANY) return reply(ResponseCode.REFUSED, question);

  const answers = lookUp(zone, question);
  if (answers === undefined) return reply(ResponseCode.NXDOMAIN, question, [], true);
  return reply(ResponseCode.NOERROR, question, answers, true);
}

export interface DnsServerOptions {
  zone: Zone;
  /** Addresses to listen on, IPv4 or IPv6. Each gets a UDP and a TCP socket. */
  addresses: readonly string[];
  port?: number;
  /** Receives a message for each error the server catches and carries on after. */
  onError?: (message: string) => void;
}

/** A bound socket of the DNS server. With port 0, the UDP and TCP ports of one address differ. */
export interface DnsListener {
  protocol: "udp" | "tcp";
  address: string;
  port: number;
}

export interface DnsServer {
  listeners: DnsListener[];
  /** Stops listening and closes open TCP connections. */
  close(): Promise<void>;
}

interface BoundSocket {
  listener: DnsListener;
  close(): Promise<void>;
}

/** Milliseconds a TCP client may stay idle before the server closes its connection. */
const TCP_IDLE_TIMEOUT_MS = 10_000;

type ErrorSink = (message: string) => void;

/** Builds a response like buildResponse, but reports an unexpected exception instead of throwing it. */
function respondSafely(query: Buffer, zone: Zone, maxLength: number, onError: ErrorSink): Buffer | undefined {
  try {
    return buildResponse(query, zone, maxLength);
  } catch (error) {
    onError(`failed to build a DNS response to a ${query.length}-byte query: ${String(error)}`);
    return undefined;
  }
}

function serveTcpConnection(socket: net.Socket, zone: Zone, onError: ErrorSink): void {
  let pending = Buffer.alloc(0);
  socket.setTimeout(TCP_IDLE_TIMEOUT_MS, () => socket.destroy());
  socket.on("error", (error) => onError(`DNS TCP connection from ${socket.remoteAddress} failed: ${error.message}`));
  socket.on("data", (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    // Each TCP message is preceded by its length as 2 bytes (RFC 1035 section 4.2.2).
    while (pending.length >= 2) {
      const length = pending.readUInt16BE(0);
      if (pending.length < 2 + length) break;
      const query = pending.subarray(2, 2 + length);
      pending = pending.subarray(2 + length);
      const response = respondSafely(query, zone, Number.POSITIVE_INFINITY, onError);
      if (response === undefined) continue;
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(response.length, 0);
      socket.write(Buffer.concat([prefix, response]));
    }
  });
}

async function listenUdp(address: string, port: number, zone: Zone, onError: ErrorSink): Promise<BoundSocket> {
  const socket = dgram.createSocket({ type: net.isIPv6(address) ? "udp6" : "udp4", ipv6Only: net.isIPv6(address) });
  socket.on("message", (query, sender) => {
    const response = respondSafely(query, zone, MAX_UDP_RESPONSE, onError);
    if (response === undefined) return;
    socket.send(response, sender.port, sender.address, (error) => {
      if (error) onError(`failed to send a DNS response to ${sender.address} port ${sender.port}: ${error.message}`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind({ address, port }, () => {
      socket.off("error", reject);
      socket.on("error", (error) => onError(`DNS UDP socket on ${address} port ${port} failed: ${error.message}`));
      resolve();
    });
  });
  return {
    listener: { protocol: "udp", address, port: socket.address().port },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

async function listenTcp(address: string, port: number, zone: Zone, onError: ErrorSink): Promise<BoundSocket> {
  const connections = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections.add(socket);
    socket.on("close", () => connections.delete(socket));
    serveTcpConnection(socket, zone, onError);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: address, port, ipv6Only: net.isIPv6(address) }, () => {
      server.off("error", reject);
      server.on("error", (error) => onError(`DNS TCP server on ${address} port ${port} failed: ${error.message}`));
      resolve();
    });
  });
  const bound = server.address() as net.AddressInfo;
  return {
    listener: { protocol: "tcp", address, port: bound.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of connections) socket.destroy();
      }),
  };
}

/** Starts listening on every address, and resolves once all sockets are bound. */
export async function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  const port = options.port ?? DNS_PORT;
  const onError = options.onError ?? (() => {});
  const sockets: BoundSocket[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(sockets.splice(0).map((socket) => socket.close()));
  };

  try {
    for (const address of options.addresses) {
      sockets.push(await listenUdp(address, port, options.zone, onError));
      sockets.push(await listenTcp(address, port, options.zone, onError));
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { listeners: sockets.map((socket) => socket.listener), close };
}
