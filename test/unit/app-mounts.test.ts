/** The mounts of the apps' mount namespace, as fstab lines. */
import { describe, expect, it } from "vitest";
import { escapeFstabField, planAppMounts, renderFstab } from "../../src/resources/app-mounts.js";

describe("planAppMounts", () => {
  it("covers folders before binding the DNS files", () => {
    process.env.VPNNS_STATE_DIR = "/run/vpnns";
    const entries = planAppMounts("work", { hiddenFolders: ["/run/nscd", "/run/systemd/resolve"], bindResolvConf: true });
    expect(entries.map((entry) => entry.target)).toEqual(["/sys", "/run/nscd", "/run/systemd/resolve", "/etc/resolv.conf", "/etc/nsswitch.conf"]);
    expect(entries[1]).toEqual({ source: "/run/vpnns/work/mounts/cover-run-nscd", target: "/run/nscd", type: "none", options: "bind,ro" });
    expect(entries[3]?.source).toBe("/etc/netns/vpnns-work/resolv.conf");
  });

  it("skips resolv.conf without a target", () => {
    const entries = planAppMounts("work", { hiddenFolders: [], bindResolvConf: false });
    expect(entries.map((entry) => entry.target)).toEqual(["/sys", "/etc/nsswitch.conf"]);
  });

  it("renders one fstab line per mount", () => {
    const text = renderFstab(planAppMounts("work", { hiddenFolders: [], bindResolvConf: true }));
    expect(text.split("\n")).toEqual([
      "vpnns-work /sys sysfs defaults 0 0",
      "/etc/netns/vpnns-work/resolv.conf /etc/resolv.conf none bind 0 0",
      "/etc/netns/vpnns-work/nsswitch.conf /etc/nsswitch.conf none bind 0 0",
      "",
    ]);
  });
});

describe("escapeFstabField", () => {
  it("escapes spaces, tabs and backslashes", () => {
    expect(escapeFstabField("/run/my state\t\\x")).toBe("/run/my\\040state\\011\\134x");
  });

  it("leaves plain paths alone", () => {
    expect(escapeFstabField("/run/vpnns/work/mounts")).toBe("/run/vpnns/work/mounts");
  });
});
