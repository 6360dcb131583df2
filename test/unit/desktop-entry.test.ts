import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  escapeValue,
  formatExec,
  keepFileFieldCodes,
  literalArgument,
  parseDesktopEntry,
  quoteExecArgument,
  renderLauncher,
  splitExec,
  unescapeValue,
} from "../../src/apps/desktop-entry.js";

const FIXTURES = new URL("../fixtures/desktop/", import.meta.url);

function fixture(name: string): string {
  return readFileSync(new URL(name, FIXTURES), "utf8");
}

/** Read an Exec value as a desktop environment does: string escapes first, then the quoting. */
function execArguments(line: string): string[] | undefined {
  return splitExec(unescapeValue(line));
}

describe("parseDesktopEntry", () => {
  it("reads only the Desktop Entry group", () => {
    const entry = parseDesktopEntry(fixture("firefox.desktop"));
    expect(entry.get("Name")).toBe("Firefox");
    expect(entry.get("Name[fr]")).toBe("Navigateur Firefox");
    expect(entry.get("Exec")).toBe("firefox %u");
    expect(entry.get("Categories")).toBe("Network;WebBrowser;");
    expect([...entry.values()]).not.toContain("firefox --new-window %u");
  });

  it("ignores comments and spaces around =", () => {
    const entry = parseDesktopEntry("# comment\n[Desktop Entry]\nName = Spaced \n#Icon=no\nIcon=yes\n");
    expect(entry.get("Name")).toBe("Spaced");
    expect(entry.get("Icon")).toBe("yes");
  });

  it("keeps the first of duplicate keys", () => {
    expect(parseDesktopEntry("[Desktop Entry]\nName=first\nName=second\n").get("Name")).toBe("first");
  });
});

describe("string escapes", () => {
  it("round-trips special characters", () => {
    const value = " lead\\tab\there\nnew\rline";
    expect(escapeValue(value)).toBe("\\slead\\\\tab\\there\\nnew\\rline");
    expect(unescapeValue(escapeValue(value))).toBe(value);
  });

  it("leaves other backslashes for Exec quoting", () => {
    expect(unescapeValue('a \\" b \\$')).toBe('a \\" b \\$');
  });
});

describe("splitExec", () => {
  it("splits on spaces and keeps field codes", () => {
    expect(splitExec("firefox --new-window %u")).toEqual(["firefox", "--new-window", "%u"]);
  });

  it("undoes quoting", () => {
    expect(splitExec('"/opt/My App/run" "a \\"b\\" \\$HOME \\` \\\\" ""')).toEqual(["/opt/My App/run", 'a "b" $HOME ` \\', ""]);
  });

  it("reads the fixture's tricky Exec", () => {
    const entry = parseDesktopEntry(fixture("tricky.desktop"));
    expect(execArguments(entry.get("Exec")!)).toEqual(["/opt/Tricky App/tricky", "--title", 'say "hi" for $5 ` \\ done', "--ratio", "50%%", "%i", "%F"]);
  });

  it("rejects an unclosed quote", () => {
    expect(splitExec('app "open')).toBeUndefined();
  });

  it("collapses repeated spaces", () => {
    expect(splitExec("  app   one\ttwo ")).toEqual(["app", "one", "two"]);
  });
});

describe("quoteExecArgument", () => {
  it.each([
    ["plain", "plain"],
    ["/usr/bin/vpnns", "/usr/bin/vpnns"],
    ["--profile=a,b", "--profile=a,b"],
    ["", '""'],
    ["two words", '"two words"'],
    ['say "hi"', '"say \\"hi\\""'],
    ["$HOME", '"\\$HOME"'],
    ["back`tick", '"back\\`tick"'],
    ["a\\b", '"a\\\\b"'],
    ["it's", '"it\'s"'],
    ["~user", '"~user"'],
    ["a;b|c&d", '"a;b|c&d"'],
    ["glob*?", '"glob*?"'],
    ["#hash(1)", '"#hash(1)"'],
    ["<in>", '"<in>"'],
    ["%u", "%u"],
  ])("quotes %j as %j", (argument, expected) => {
    expect(quoteExecArgument(argument)).toBe(expected);
  });
});

describe("formatExec", () => {
  it("applies string escapes after quoting", () => {
    // A literal backslash in a quoted argument takes four backslashes in the file.
    expect(formatExec(["app", "a\\b"])).toBe('app "a\\\\\\\\b"');
    expect(formatExec(["app", "line\nbreak"])).toBe('app "line\\nbreak"');
  });

  it.each([
    [["/opt/Tricky App/tricky", "--title", 'say "hi" for $5 ` \\ done', "%F"]],
    [["app", "", "tab\there", "new\nline", "50%%", "%u"]],
    [["/usr/bin/node", "/srv/vpnns/dist/cli/main.js", "run", "--profile", "home", "--", "firefox", "%u"]],
  ])("round-trips %j", (args) => {
    expect(execArguments(formatExec(args))).toEqual(args);
  });
});

describe("field codes", () => {
  it("keeps only file and URL codes", () => {
    expect(keepFileFieldCodes(["app", "%i", "--name=%c", "%k", "%d", "50%%", "%U"])).toEqual(["app", "50%%", "%U"]);
  });

  it("writes literal percent signs doubled", () => {
    expect(literalArgument("/opt/100%/vpnns")).toBe("/opt/100%%/vpnns");
  });
});

describe("renderLauncher", () => {
  it("keeps name, icon, types and file codes", () => {
    const text = renderLauncher({
      profile: "sweden",
      app: "firefox",
      vpnnsCommand: ["/usr/local/bin/vpnns"],
      appCommand: ["firefox", "%u"],
      original: parseDesktopEntry(fixture("firefox.desktop")),
    });
    const lines = text.trimEnd().split("\n");
    expect(lines[0]).toBe("[Desktop Entry]");
    expect(lines).toContain("Type=Application");
    expect(lines).toContain("Name=Firefox (VPN: sweden)");
    expect(lines).toContain("Name[fr]=Navigateur Firefox (VPN: sweden)");
    expect(lines).toContain("Icon=firefox");
    expect(lines).toContain("Terminal=false");
    expect(lines).toContain("MimeType=text/html;text/xml;application/xhtml+xml;x-scheme-handler/http;x-scheme-handler/https;");
    expect(lines).toContain("Categories=Network;WebBrowser;");
    expect(lines).toContain("Exec=/usr/local/bin/vpnns run --profile sweden -- firefox %u");
    expect(text).not.toContain("TryExec");
    expect(text).not.toContain("Actions");
  });

  it("writes a minimal entry without original", () => {
    const text = renderLauncher({ profile: "work", app: "tool", vpnnsCommand: ["/usr/bin/node", "/opt/v n/main.js"], appCommand: ["tool"] });
    expect(text).toBe(
      [
        "[Desktop Entry]",
        "Type=Application",
        "Name=tool (VPN: work)",
        'Exec=/usr/bin/node "/opt/v n/main.js" run --profile work -- tool',
        "X-Vpnns-Profile=work",
        "",
      ].join("\n"),
    );
  });

  it("escapes percent in the vpnns path", () => {
    const text = renderLauncher({ profile: "work", app: "app", vpnnsCommand: ["/opt/100%/vpnns"], appCommand: ["app", "%f"] });
    expect(text).toContain("Exec=/opt/100%%/vpnns run --profile work -- app %f");
  });
});
