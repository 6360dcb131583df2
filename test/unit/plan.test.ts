import { describe, expect, it } from "vitest";
import { planUp, renderIpBatch, DEFAULT_MTU } from "../../src/core/plan.js";
import type { Profile } from "../../src/profile/types.js";

const KEY_A = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const KEY_B = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

function profile(overrides: Partial<Profile["interface"]> = {}, allowedIPs = ["0.0.0.0/0", "::/0"]): Profile {
  return {
    name: "home",
    interface: { privateKey: KEY_A, addresses: ["192.0.2.2/32", "2001:db8:2::2/128"], dns: ["192.0.2.1"], dnsSearch: [], ...overrides },
    peers: [{ publicKey: KEY_B, allowedIPs, endpoint: "198.18.0.2:51820" }],
  };
}

function commandLines(plan: ReturnType<typeof planUp>): string[][] {
  return plan.flatMap((step) => step.commands.map((command) => command.argv));
}

describe("planUp", () => {
  it("orders kill-switch before the link", () => {
    const ids = planUp(profile(), { wireguardBackend: "kernel", firewallBackend: "nft" }).map((step) => step.id);
    expect(ids).toEqual(["namespace", "firewall", "link", "configure", "move", "addresses", "dns", "mounts", "handshake"]);
  });

  it("plans kernel link creation with ip", () => {
    const plan = planUp(profile(), { wireguardBackend: "kernel", firewallBackend: "nft" });
    const link = plan.find((step) => step.id === "link")!;
    expect(link.commands.map((command) => command.argv)).toEqual([["ip", "link", "add", "dev", "vns-home", "type", "wireguard"]]);
  });

  it("plans userspace link creation with wireguard-go", () => {
    const plan = planUp(profile(), { wireguardBackend: "wireguard-go", firewallBackend: "nft" });
    const link = plan.find((step) => step.id === "link")!;
    expect(link.commands[0]!.argv).toEqual(["wireguard-go", "vns-home"]);
    expect(link.commands[0]!.options.env).toEqual({ WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1" });
  });

  it("differs between backends only in link creation", () => {
    const kernel = planUp(profile(), { wireguardBackend: "kernel", firewallBackend: "nft", pingGroupRange: "0 2147483647" });
    const userspace = planUp(profile(), { wireguardBackend: "wireguard-go", firewallBackend: "nft", pingGroupRange: "0 2147483647" });
    const withoutLink = (plan: typeof kernel) => commandLines(plan.filter((step) => step.id !== "link"));
    expect(withoutLink(kernel)).toEqual(withoutLink(userspace));
    expect(commandLines(kernel)).toEqual([
      ["ip", "netns", "add", "vpnns-home"],
      ["ip", "-n", "vpnns-home", "link", "set", "dev", "lo", "up"],
      ["ip", "netns", "exec", "vpnns-home", "sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647"],
      ["ip", "netns", "exec", "vpnns-home", "nft", "-f", "-"],
      ["ip", "link", "add", "dev", "vns-home", "type", "wireguard"],
      ["wg", "setconf", "vns-home", "/run/vpnns/home/wg-setconf.conf"],
      ["ip", "link", "set", "dev", "vns-home", "netns", "vpnns-home"],
      ["ip", "-n", "vpnns-home", "-batch", "-"],
    ]);
  });

  it("copies ping group range in namespace step", () => {
    const plan = planUp(profile(), { wireguardBackend: "kernel", firewallBackend: "nft", pingGroupRange: "1000 1000" });
    const namespace = plan.find((step) => step.id === "namespace")!;
    expect(namespace.commands.map((command) => command.argv)).toEqual([
      ["ip", "netns", "add", "vpnns-home"],
      ["ip", "-n", "vpnns-home", "link", "set", "dev", "lo", "up"],
      ["ip", "netns", "exec", "vpnns-home", "sysctl", "-q", "-w", "net.ipv4.ping_group_range=1000 1000"],
    ]);
    expect(namespace.commands[2]!.options.mutates).toBe(true);
  });

  it("plans no sysctl without ping group range", () => {
    const plan = planUp(profile(), { wireguardBackend: "kernel", firewallBackend: "nft" });
    for (const argv of commandLines(plan)) expect(argv).not.toContain("sysctl");
  });

  it("keeps keys off every command line", () => {
    const plan = planUp(profile(), { wireguardBackend: "kernel", firewallBackend: "nft" });
    for (const argv of commandLines(plan)) expect(argv.join(" ")).not.toContain(KEY_A);
    const configure = plan.find((step) => step.id === "configure")!.commands[0]!;
    expect(configure.secretFile!.content).toContain(`PrivateKey = ${KEY_A}`);
    expect(configure.secretFile!.path).toBe(configure.argv[3]);
  });

  it("plans iptables-restore for both families", () => {
    const plan = planUp(profile(), { wireguardBackend: "kernel", firewallBackend: "iptables" });
    const firewall = plan.find((step) => step.id === "firewall")!;
    expect(firewall.commands.map((command) => command.argv.slice(4))).toEqual([["iptables-restore"], ["ip6tables-restore"]]);
  });
});

describe("renderIpBatch", () => {
  it("adds addresses, MTU and default routes", () => {
    expect(renderIpBatch(profile(), "vns-home").split("\n")).toEqual([
      "address add 192.0.2.2/32 dev vns-home",
      "address add 2001:db8:2::2/128 dev vns-home",
      `link set dev vns-home mtu ${DEFAULT_MTU} up`,
      "route replace 0.0.0.0/0 dev vns-home",
      "route replace ::/0 dev vns-home",
      "",
    ]);
  });

  it("uses the profile MTU", () => {
    expect(renderIpBatch(profile({ mtu: 1280 }), "vns-home")).toContain("link set dev vns-home mtu 1280 up");
  });

  it("routes only allowed networks without default", () => {
    const lines = renderIpBatch(profile({}, ["198.51.100.0/24", "2001:db8:5::/48"]), "vns-home").trim().split("\n");
    expect(lines.slice(3)).toEqual(["route replace 198.51.100.0/24 dev vns-home", "route replace 2001:db8:5::/48 dev vns-home"]);
    expect(lines.join("\n")).not.toContain("/0 ");
  });
});
