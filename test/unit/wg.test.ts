import { describe, expect, it } from "vitest";
import { parseAllDump, parseDump } from "../../src/tools/wg.js";

const PRIVATE = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const PRESHARED = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=";

describe("parseDump", () => {
  const dump = [
    `${PRIVATE}\tHIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\t40123\toff`,
    `xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\t${PRESHARED}\t198.18.0.2:51820\t0.0.0.0/0,::/0\t1700000000\t1024\t2048\toff`,
    "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=\t(none)\t(none)\t198.51.100.0/24\t0\t0\t0\t25",
    "",
  ].join("\n");

  it("reads peers and drops secrets", () => {
    const status = parseDump(dump);
    expect(status.listenPort).toBe(40123);
    expect(status.peers).toHaveLength(2);
    expect(JSON.stringify(status)).not.toContain(PRIVATE);
    expect(JSON.stringify(status)).not.toContain(PRESHARED);
  });

  it("reads handshake, transfer and keepalive", () => {
    const [first, second] = parseDump(dump).peers;
    expect(first).toEqual({
      publicKey: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
      endpoint: "198.18.0.2:51820",
      allowedIPs: ["0.0.0.0/0", "::/0"],
      latestHandshake: 1700000000,
      rxBytes: 1024,
      txBytes: 2048,
      persistentKeepalive: undefined,
    });
    expect(second!.endpoint).toBeUndefined();
    expect(second!.persistentKeepalive).toBe(25);
  });
});

describe("parseAllDump", () => {
  const dump = [
    `vns-a\t${PRIVATE}\tHIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\t40123\toff`,
    `vns-a\txTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\t${PRESHARED}\t198.18.0.2:51820\t0.0.0.0/0\t1700000000\t1024\t2048\toff`,
    `vns-b\t${PRIVATE}\tTrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=\t40124\toff`,
    "",
  ].join("\n");

  it("groups lines by interface", () => {
    const all = parseAllDump(dump);
    expect([...all.keys()]).toEqual(["vns-a", "vns-b"]);
    expect(all.get("vns-a")!.listenPort).toBe(40123);
    expect(all.get("vns-a")!.peers.map((peer) => peer.latestHandshake)).toEqual([1700000000]);
    expect(all.get("vns-b")!.publicKey).toBe("TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=");
    expect(all.get("vns-b")!.peers).toEqual([]);
  });

  it("drops the secrets", () => {
    const text = JSON.stringify([...parseAllDump(dump).values()]);
    expect(text).not.toContain(PRIVATE);
    expect(text).not.toContain(PRESHARED);
  });

  it("reads empty output as no interfaces", () => {
    expect(parseAllDump("").size).toBe(0);
  });
});
