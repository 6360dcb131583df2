/** The pcap decoder and the packet sorting of the leak tests, on frames built by hand. */
import { describe, expect, it } from "vitest";
import { classifyPacket, decodePcap, describePacket, type UplinkRules } from "../integration/capture.js";

const HOST_MAC = "02:00:00:00:00:01";
const PROVIDER_MAC = "02:00:00:00:00:02";

const RULES: UplinkRules = {
  hostMac: HOST_MAC,
  hostAddresses: ["198.18.0.1", "2001:db8:1::1"],
  endpoints: [{ address: "198.18.0.2", port: 51820 }],
  markerAddress: "198.18.0.2",
  insideAddresses: ["192.0.2.10", "2001:db8:2::a"],
};

function mac(text: string): Buffer {
  return Buffer.from(text.split(":").map((part) => parseInt(part, 16)));
}

function ethernet(source: string, etherType: number, body: Buffer): Buffer {
  const header = Buffer.alloc(14);
  mac("ff:ff:ff:ff:ff:ff").copy(header, 0);
  mac(source).copy(header, 6);
  header.writeUInt16BE(etherType, 12);
  return Buffer.concat([header, body]);
}

function ipv4(source: string, destination: string, protocol: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(20);
  header[0] = 0x45;
  header.writeUInt16BE(20 + payload.length, 2);
  header[8] = 64;
  header[9] = protocol;
  Buffer.from(source.split(".").map(Number)).copy(header, 12);
  Buffer.from(destination.split(".").map(Number)).copy(header, 16);
  return Buffer.concat([header, payload]);
}

function ipv6Bytes(address: string): Buffer {
  const [head = "", tail = ""] = address.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === "" ? [] : tail.split(":");
  const groups = [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill("0"), ...tailGroups];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, index) => bytes.writeUInt16BE(parseInt(group, 16), index * 2));
  return bytes;
}

function ipv6(source: string, destination: string, nextHeader: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(40);
  header[0] = 0x60;
  header.writeUInt16BE(payload.length, 4);
  header[6] = nextHeader;
  header[7] = 255;
  ipv6Bytes(source).copy(header, 8);
  ipv6Bytes(destination).copy(header, 24);
  return Buffer.concat([header, payload]);
}

function udp(sourcePort: number, destinationPort: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt16BE(sourcePort, 0);
  header.writeUInt16BE(destinationPort, 2);
  header.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([header, payload]);
}

function tcp(sourcePort: number, destinationPort: number): Buffer {
  const header = Buffer.alloc(20);
  header.writeUInt16BE(sourcePort, 0);
  header.writeUInt16BE(destinationPort, 2);
  header[12] = 0x50;
  header[13] = 0x02;
  return header;
}

function icmp(type: number, code: number, quoted: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = type;
  header[1] = code;
  return Buffer.concat([header, quoted]);
}

/** Builds a WireGuard message of the given type: the type byte, three reserved zero bytes, then 44 other bytes. */
function wireguardMessage(type: number): Buffer {
  const message = Buffer.alloc(48, 0xab);
  message[0] = type;
  message.fill(0, 1, 4);
  return message;
}

/** Builds a little-endian pcap file of Ethernet frames. */
function pcap(frames: Buffer[]): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(1, 20);
  const records = frames.map((frame) => {
    const record = Buffer.alloc(16);
    record.writeUInt32LE(frame.length, 8);
    record.writeUInt32LE(frame.length, 12);
    return Buffer.concat([record, frame]);
  });
  return Buffer.concat([header, ...records]);
}

function sortFrame(frame: Buffer): string {
  const [packet] = decodePcap(pcap([frame]));
  return classifyPacket(packet!, RULES);
}

describe("decodePcap", () => {
  it("decodes addresses, protocol and ports", () => {
    const frame = ethernet(HOST_MAC, 0x0800, ipv4("198.18.0.1", "203.0.113.9", 6, tcp(40000, 443)));
    const [packet] = decodePcap(pcap([frame]));
    expect(packet?.family).toBe("ipv4");
    expect(packet?.source).toBe("198.18.0.1");
    expect(packet?.destination).toBe("203.0.113.9");
    expect(packet?.protocol).toBe("tcp");
    expect(packet?.sourcePort).toBe(40000);
    expect(packet?.destinationPort).toBe(443);
    expect(describePacket(packet!)).toBe(`#0 from ${HOST_MAC}: ipv4 198.18.0.1 > 203.0.113.9 tcp 40000 > 443`);
  });

  it("compresses IPv6 addresses", () => {
    const frame = ethernet(HOST_MAC, 0x86dd, ipv6("2001:db8:1::1", "2001:db8::7", 17, udp(5000, 53, Buffer.from("x"))));
    const [packet] = decodePcap(pcap([frame]));
    expect(packet?.source).toBe("2001:db8:1::1");
    expect(packet?.destination).toBe("2001:db8::7");
    expect(packet?.protocol).toBe("udp");
  });

  it("leaves out a record cut short", () => {
    const whole = ethernet(HOST_MAC, 0x0806, Buffer.alloc(28));
    const file = pcap([whole, whole]);
    expect(decodePcap(file)).toHaveLength(2);
    expect(decodePcap(file.subarray(0, file.length - 5))).toHaveLength(1);
  });

  it("rejects a file that is not pcap", () => {
    expect(() => decodePcap(Buffer.alloc(40, 1))).toThrow(/not a pcap file/);
  });
});

describe("classifyPacket", () => {
  const wireguardOut = ethernet(HOST_MAC, 0x0800, ipv4("198.18.0.1", "198.18.0.2", 17, udp(41000, 51820, wireguardMessage(1))));
  const wireguardIn = ethernet(PROVIDER_MAC, 0x0800, ipv4("198.18.0.2", "198.18.0.1", 17, udp(51820, 41000, wireguardMessage(2))));
  const quotedWireGuard = ipv4("198.18.0.2", "198.18.0.1", 17, udp(51820, 41000, wireguardMessage(4)));
  const cases: [string, Buffer, string][] = [
    ["WireGuard to the endpoint", wireguardOut, "wireguard-out"],
    ["WireGuard from the endpoint", wireguardIn, "wireguard-in"],
    ["ICMP error about WireGuard", ethernet(HOST_MAC, 0x0800, ipv4("198.18.0.1", "198.18.0.2", 1, icmp(3, 3, quotedWireGuard))), "wireguard-error"],
    ["ARP", ethernet(HOST_MAC, 0x0806, Buffer.alloc(28)), "arp"],
    ["neighbour solicitation", ethernet(HOST_MAC, 0x86dd, ipv6("fe80::1", "ff02::1:ff00:2", 58, icmp(135, 0, Buffer.alloc(16)))), "neighbour-discovery"],
    ["end marker", ethernet(HOST_MAC, 0x0800, ipv4("198.18.0.1", "198.18.0.2", 17, udp(42000, 9, Buffer.from("vpnns-capture-end 1")))), "marker"],
    ["UDP that is not WireGuard", ethernet(HOST_MAC, 0x0800, ipv4("198.18.0.1", "198.18.0.2", 17, udp(41000, 51820, Buffer.from("plain text")))), "leak"],
    ["WireGuard to another port", ethernet(HOST_MAC, 0x0800, ipv4("198.18.0.1", "198.18.0.2", 17, udp(41000, 51821, wireguardMessage(1)))), "leak"],
    ["TCP from the host", ethernet(HOST_MAC, 0x0800, ipv4("198.18.0.1", "203.0.113.9", 6, tcp(40000, 80))), "leak"],
    ["forwarded packet", ethernet(HOST_MAC, 0x0800, ipv4("198.51.100.254", "198.18.0.2", 1, icmp(8, 0, Buffer.alloc(8)))), "leak"],
    ["tunnel address on the uplink", ethernet(PROVIDER_MAC, 0x0800, ipv4("192.0.2.1", "192.0.2.10", 6, tcp(80, 40000))), "leak"],
    ["IPv6 tunnel address", ethernet(HOST_MAC, 0x86dd, ipv6("2001:db8:2::a", "2001:db8::7", 17, udp(5000, 53, Buffer.from("x")))), "leak"],
    ["unknown EtherType", ethernet(HOST_MAC, 0x88cc, Buffer.alloc(20)), "leak"],
    ["TCP from the provider", ethernet(PROVIDER_MAC, 0x0800, ipv4("198.18.0.2", "198.18.0.1", 6, tcp(80, 40000))), "unexpected-in"],
  ];

  it.each(cases)("%s", (_name, frame, expected) => {
    expect(sortFrame(frame)).toBe(expected);
  });
});
