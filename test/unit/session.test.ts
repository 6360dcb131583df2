import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkDesktopSession, escapeBusValue, parseBusAddresses } from "../../src/apps/session.js";

const root = mkdtempSync(join(tmpdir(), "vpnns-session-"));
const runtimeWithBus = join(root, "runtime with bus");
const runtimeWithoutBus = join(root, "runtime");
const x11Dir = join(root, "x11");
const servers: Server[] = [];

function listen(path: string): Promise<void> {
  return new Promise((resolve) => {
    const server = createServer();
    servers.push(server);
    server.listen(path, resolve);
  });
}

beforeAll(async () => {
  for (const folder of [runtimeWithBus, runtimeWithoutBus, x11Dir]) mkdirSync(folder, { recursive: true });
  await listen(join(runtimeWithBus, "bus"));
  await listen(join(x11Dir, "X0"));
  // A regular file where a socket belongs does not count.
  writeFileSync(join(runtimeWithoutBus, "bus"), "");
});

afterAll(() => {
  for (const server of servers) server.close();
  rmSync(root, { recursive: true, force: true });
});

describe("D-Bus addresses", () => {
  it("parses transports and unescapes values", () => {
    const [first, second] = parseBusAddresses("unix:abstract=/tmp/dbus-X,guid=0a1b;unix:path=/run/user/1000/my%20bus");
    expect(first!.transport).toBe("unix");
    expect(first!.keys.get("abstract")).toBe("/tmp/dbus-X");
    expect(first!.keys.get("guid")).toBe("0a1b");
    expect(second!.keys.get("path")).toBe("/run/user/1000/my bus");
  });

  it("escapes bytes outside the optionally-escaped set", () => {
    expect(escapeBusValue("/run/user/1000/bus")).toBe("/run/user/1000/bus");
    expect(escapeBusValue("/tmp/a b,c=d;é*")).toBe("/tmp/a%20b%2cc%3dd%3b%c3%a9*");
  });
});

describe("checkDesktopSession bus", () => {
  it("replaces an abstract address by the path socket", () => {
    const env = { DBUS_SESSION_BUS_ADDRESS: "unix:abstract=/tmp/dbus-X,guid=0a1b", XDG_RUNTIME_DIR: runtimeWithBus };
    const result = checkDesktopSession(env, "work", x11Dir);
    expect(result.env.DBUS_SESSION_BUS_ADDRESS).toBe(`unix:path=${escapeBusValue(join(runtimeWithBus, "bus"))}`);
    expect(result.warnings).toEqual([]);
    expect(result.changes).toHaveLength(1);
    expect(env.DBUS_SESSION_BUS_ADDRESS).toBe("unix:abstract=/tmp/dbus-X,guid=0a1b");
  });

  it("warns when no path socket exists", () => {
    const env = { DBUS_SESSION_BUS_ADDRESS: "unix:abstract=/tmp/dbus-X", XDG_RUNTIME_DIR: runtimeWithoutBus };
    const result = checkDesktopSession(env, "work", x11Dir);
    expect(result.env.DBUS_SESSION_BUS_ADDRESS).toBe("unix:abstract=/tmp/dbus-X");
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toContain("the D-Bus session bus address unix:abstract=/tmp/dbus-X uses an abstract Unix socket");
    expect(result.warnings[0]).toContain("installing dbus-user-session");
  });

  it("warns about a TCP bus", () => {
    const result = checkDesktopSession({ DBUS_SESSION_BUS_ADDRESS: "tcp:host=localhost,port=4000" }, "work", x11Dir);
    expect(result.warnings[0]).toContain("uses TCP, which the kill-switch blocks inside the namespace");
  });

  it("keeps a list with a reachable address", () => {
    const value = "unix:abstract=/tmp/dbus-X;unix:path=/run/user/1000/bus";
    const result = checkDesktopSession({ DBUS_SESSION_BUS_ADDRESS: value, XDG_RUNTIME_DIR: runtimeWithBus }, "work", x11Dir);
    expect(result.env.DBUS_SESSION_BUS_ADDRESS).toBe(value);
    expect(result.warnings).toEqual([]);
  });

  it("leaves a path address alone", () => {
    const result = checkDesktopSession({ DBUS_SESSION_BUS_ADDRESS: "unix:path=/run/user/1000/bus" }, "work", x11Dir);
    expect(result.changes).toEqual([]);
    expect(result.warnings).toEqual([]);
  });
});

describe("checkDesktopSession display", () => {
  it.each([":0", ":0.0", "unix:0"])("accepts %s with a socket", (display) => {
    expect(checkDesktopSession({ DISPLAY: display }, "work", x11Dir).warnings).toEqual([]);
  });

  it("warns without the path socket", () => {
    const [warning] = checkDesktopSession({ DISPLAY: ":1" }, "work", x11Dir).warnings;
    expect(warning).toContain(`DISPLAY :1 has no socket ${join(x11Dir, "X1")}`);
  });

  it("warns about a TCP display", () => {
    const [warning] = checkDesktopSession({ DISPLAY: "localhost:10.0" }, "work", x11Dir).warnings;
    expect(warning).toContain("DISPLAY localhost:10.0 connects to the X server over TCP");
  });

  it("warns about a TCP PulseAudio server", () => {
    expect(checkDesktopSession({ PULSE_SERVER: "tcp:192.0.2.5:4713" }, "work", x11Dir).warnings[0]).toContain("PULSE_SERVER tcp:192.0.2.5:4713");
    expect(checkDesktopSession({ PULSE_SERVER: "unix:/run/user/1000/pulse/native" }, "work", x11Dir).warnings).toEqual([]);
  });

  it("checks nothing in a bare environment", () => {
    const result = checkDesktopSession({}, "work", x11Dir);
    expect(result.warnings).toEqual([]);
    expect(result.changes).toEqual([]);
  });
});
