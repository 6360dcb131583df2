import { readFile } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import {
  DEFAULT_UNIT_DIR,
  formatExecArguments,
  normalizeServiceName,
  renderDropIn,
  renderTemplate,
  SHIPPED_TEMPLATE_OPTIONS,
  unitDir,
  type TemplateOptions,
} from "../../src/systemd/units.js";
import { MOUNT_NAMESPACE_KEYS, NETWORK_NAMESPACE_KEYS, parseUnitFile, splitExecLine, unitValue, unitValues } from "../systemd-unit-file.js";

const SHIPPED_UNIT = new URL("../../systemd/vpnns@.service", import.meta.url);

const OPTIONS: TemplateOptions = {
  command: ["/usr/bin/node", "/opt/vpnns/dist/cli/main.js"],
  documentation: ["file:///opt/vpnns/docs/systemd.md", "file:///opt/vpnns/README.md"],
  environment: { VPNNS_CONFIG_DIR: "/srv/vpnns/config" },
  retryForSeconds: 120,
  origin: ["Written by a test."],
};

describe("vpnns@.service template", () => {
  const entries = parseUnitFile(renderTemplate(OPTIONS));

  it("is a oneshot that remains active", () => {
    expect(unitValue(entries, "Service", "Type")).toBe("oneshot");
    expect(unitValue(entries, "Service", "RemainAfterExit")).toBe("yes");
  });

  it("brings the instance up and down", () => {
    const start = splitExecLine(unitValue(entries, "Service", "ExecStart"), "work");
    const stop = splitExecLine(unitValue(entries, "Service", "ExecStop"), "work");
    expect(start).toEqual(["/usr/bin/node", "/opt/vpnns/dist/cli/main.js", "up", "work", "--retry-for", "120", "--handshake-timeout", "10"]);
    expect(stop).toEqual(["/usr/bin/node", "/opt/vpnns/dist/cli/main.js", "down", "work"]);
  });

  it("starts after the network and name service", () => {
    expect(unitValue(entries, "Unit", "Wants")).toBe("network-online.target");
    expect(unitValue(entries, "Unit", "After").split(" ").sort()).toEqual(["network-online.target", "nss-lookup.target"]);
    expect(unitValue(entries, "Install", "WantedBy")).toBe("multi-user.target");
  });

  it("allows the last attempt before the start timeout", () => {
    expect(Number(unitValue(entries, "Service", "TimeoutStartSec"))).toBe(120 + 10 + 60);
  });

  it("rounds a fractional retry time up", () => {
    const text = renderTemplate({ ...OPTIONS, retryForSeconds: 2.5 });
    const start = unitValue(parseUnitFile(text), "Service", "ExecStart");
    expect(start).toContain("--retry-for 3 ");
    expect(unitValue(parseUnitFile(text), "Service", "TimeoutStartSec")).toBe("73");
  });

  it("lists the documentation", () => {
    expect(unitValue(entries, "Unit", "Documentation")).toBe("file:///opt/vpnns/docs/systemd.md file:///opt/vpnns/README.md");
  });

  it("omits Documentation without URLs", () => {
    expect(unitValues(parseUnitFile(renderTemplate({ ...OPTIONS, documentation: [] })), "Unit", "Documentation")).toEqual([]);
  });

  it("sets the folder variables", () => {
    expect(unitValues(entries, "Service", "Environment")).toEqual(["VPNNS_CONFIG_DIR=/srv/vpnns/config"]);
  });

  it("has no mount or network namespace of its own", () => {
    const keys = entries.map((entry) => entry.key);
    for (const key of [...MOUNT_NAMESPACE_KEYS, ...NETWORK_NAMESPACE_KEYS]) expect(keys, key).not.toContain(key);
  });

  it("explains why in a comment", () => {
    const text = renderTemplate(OPTIONS);
    expect(text).toMatch(/^# .*PrivateTmp=.*ProtectSystem=/m);
    expect(text).toContain("invisible to the rest");
  });

  it("starts with the origin comment", () => {
    expect(renderTemplate(OPTIONS).split("\n").slice(0, 3)).toEqual([
      "# Brings the vpnns profile named by the instance up at start and down at stop:",
      "# vpnns@work.service is profile work.",
      "# Written by a test.",
    ]);
  });

  it("rejects a relative command", () => {
    expect(() => renderTemplate({ ...OPTIONS, command: ["vpnns"] })).toThrow('the unit\'s command must start with an absolute path, got "vpnns"');
    expect(() => renderTemplate({ ...OPTIONS, command: [] })).toThrow("must start with an absolute path");
  });

  it("quotes paths with spaces and percent signs", () => {
    const text = renderTemplate({ ...OPTIONS, command: ["/opt/my node/node", "/opt/100%/main.js"], environment: { VPNNS_STATE_DIR: "/run/a b%" } });
    const parsed = parseUnitFile(text);
    const start = unitValue(parsed, "Service", "ExecStart");
    expect(start.startsWith('"/opt/my node/node" "/opt/100%%/main.js" up %i')).toBe(true);
    expect(splitExecLine(start, "home").slice(0, 4)).toEqual(["/opt/my node/node", "/opt/100%/main.js", "up", "home"]);
    expect(unitValues(parsed, "Service", "Environment")).toEqual(['"VPNNS_STATE_DIR=/run/a b%%"']);
  });

  it("matches the shipped copy", async () => {
    const shipped = await readFile(SHIPPED_UNIT, "utf8");
    // On a deliberate change, rewrite the file: npm run build, then
    // node -e 'import("./dist/systemd/units.js").then((m) => process.stdout.write(m.renderTemplate(m.SHIPPED_TEMPLATE_OPTIONS)))' > systemd/vpnns@.service
    expect(shipped).toBe(renderTemplate(SHIPPED_TEMPLATE_OPTIONS));
  });

  it("shipped copy runs /usr/local/bin/vpnns", async () => {
    const shipped = parseUnitFile(await readFile(SHIPPED_UNIT, "utf8"));
    expect(splitExecLine(unitValue(shipped, "Service", "ExecStart"), "work").slice(0, 3)).toEqual(["/usr/local/bin/vpnns", "up", "work"]);
    expect(unitValues(shipped, "Service", "Environment")).toEqual([]);
  });
});

describe("Exec argument formatting", () => {
  it.each([
    [["/usr/bin/node", "/a/b.js"], "/usr/bin/node /a/b.js"],
    [["/a b/node"], '"/a b/node"'],
    [["/x/50%"], '"/x/50%%"'],
    [["/x/é"], '"/x/é"'],
    [["/x/a;b"], '"/x/a;b"'],
  ])("formats %j", (argv, line) => {
    expect(formatExecArguments(argv)).toBe(line);
  });

  it.each(['/x/a"b', "/x/a'b", "/x/a\\b", "/x/a$b", "/x/a\nb", "/x/a\tb"])("rejects %j", (argument) => {
    expect(() => formatExecArguments([argument])).toThrow(/into a unit file: quotes, backslashes, "\$" and control characters are not supported/);
  });
});

describe("attach drop-in", () => {
  const entries = parseUnitFile(renderDropIn("transmission-daemon.service", "work"));

  it("binds to the profile's unit", () => {
    expect(unitValue(entries, "Unit", "BindsTo")).toBe("vpnns@work.service");
    expect(unitValue(entries, "Unit", "After")).toBe("vpnns@work.service");
  });

  it("joins the profile's namespace", () => {
    expect(unitValue(entries, "Service", "NetworkNamespacePath")).toBe("/run/netns/vpnns-work");
  });

  it("mounts the profile's DNS files", () => {
    expect(unitValue(entries, "Service", "BindReadOnlyPaths").split(" ")).toEqual([
      "/etc/netns/vpnns-work/resolv.conf:/etc/resolv.conf",
      "/etc/netns/vpnns-work/nsswitch.conf:/etc/nsswitch.conf",
    ]);
  });

  it("hides the nscd folder", () => {
    expect(unitValue(entries, "Service", "InaccessiblePaths")).toBe("-/run/nscd");
  });

  it("names the detach command", () => {
    expect(renderDropIn("transmission-daemon.service", "work")).toContain("# `vpnns systemd detach transmission-daemon.service` removes it.");
  });

  it("has only these entries", () => {
    expect(entries.map((entry) => `${entry.section}.${entry.key}`)).toEqual([
      "Unit.BindsTo",
      "Unit.After",
      "Service.NetworkNamespacePath",
      "Service.BindReadOnlyPaths",
      "Service.InaccessiblePaths",
    ]);
  });

  it("rejects an invalid profile name", () => {
    expect(() => renderDropIn("transmission-daemon.service", "../x")).toThrow('invalid profile name "../x"');
  });
});

describe("service names", () => {
  it.each([
    ["transmission-daemon", "transmission-daemon.service"],
    ["transmission-daemon.service", "transmission-daemon.service"],
    ["dbus-org.freedesktop.timesync1", "dbus-org.freedesktop.timesync1.service"],
    ["getty@tty1", "getty@tty1.service"],
    ["openvpn-client@home.service", "openvpn-client@home.service"],
    ["a:b_c\\x2d", "a:b_c\\x2d.service"],
    ["vpnns", "vpnns.service"],
  ])("accepts %j", (input, name) => {
    expect(normalizeServiceName(input)).toBe(name);
  });

  it.each([
    ["", "invalid service name: the name is empty"],
    ["  ", "invalid service name: the name is empty"],
    ["/etc/systemd/system/foo.service", 'invalid service name "/etc/systemd/system/foo.service": give a unit name such as transmission-daemon.service, not a path'],
    ["../foo", 'invalid service name "../foo": give a unit name such as transmission-daemon.service, not a path'],
    ["foo.socket", 'invalid service name "foo.socket": only services can run inside a profile, and this names a socket unit'],
    ["multi-user.target", 'invalid service name "multi-user.target": only services can run inside a profile, and this names a target unit'],
    ["getty@", 'invalid service name "getty@": it is a template; give an instance, such as getty@NAME.service'],
    ["getty@.service", 'invalid service name "getty@.service": it is a template; give an instance, such as getty@NAME.service'],
    ["vpnns@work", 'invalid service name "vpnns@work": the vpnns@ units bring profiles up and cannot run inside one'],
    ["has space", 'invalid service name "has space": use letters, digits and ":", "-", "_", ".", "\\", with at most one "@" before an instance name'],
    ["a@b@c", 'invalid service name "a@b@c": use letters, digits and ":", "-", "_", ".", "\\", with at most one "@" before an instance name'],
    ["@x", 'invalid service name "@x": use letters, digits and ":", "-", "_", ".", "\\", with at most one "@" before an instance name'],
    [".service", 'invalid service name ".service": use letters, digits and ":", "-", "_", ".", "\\", with at most one "@" before an instance name'],
    ["a$b", 'invalid service name "a$b": use letters, digits and ":", "-", "_", ".", "\\", with at most one "@" before an instance name'],
    ["x".repeat(246), `invalid service name "${"x".repeat(246)}": 254 characters with .service, at most 253 are allowed`],
  ])("rejects %j", (input, message) => {
    expect(() => normalizeServiceName(input)).toThrow(message);
  });

  it("rejects with exit code 2", () => {
    expect(() => normalizeServiceName("a/b")).toThrow(expect.objectContaining({ exitCode: 2 }));
  });
});

describe("unit folder", () => {
  const saved = process.env.VPNNS_SYSTEMD_DIR;
  afterEach(() => {
    if (saved === undefined) delete process.env.VPNNS_SYSTEMD_DIR;
    else process.env.VPNNS_SYSTEMD_DIR = saved;
  });

  it("defaults to /etc/systemd/system", () => {
    delete process.env.VPNNS_SYSTEMD_DIR;
    expect(unitDir()).toBe(DEFAULT_UNIT_DIR);
    expect(DEFAULT_UNIT_DIR).toBe("/etc/systemd/system");
  });

  it("takes VPNNS_SYSTEMD_DIR", () => {
    process.env.VPNNS_SYSTEMD_DIR = "/srv/units";
    expect(unitDir()).toBe("/srv/units");
  });

  it("prefers the option to the variable", () => {
    process.env.VPNNS_SYSTEMD_DIR = "/srv/units";
    expect(unitDir("/pkg/lib/systemd/system")).toBe("/pkg/lib/systemd/system");
  });

  it("resolves a relative folder", () => {
    expect(unitDir("units")).toBe(`${process.cwd()}/units`);
  });
});
