/**
 * A tiny HTTP client that the demo and the tests run as an app inside a profile:
 * `node probe.js URL [TIMEOUT_MS]` prints one JSON line, {"ok":true,"status":200,"body":...,"uid":...}
 * or {"ok":false,"error":...}, and exits 0 on a response, 1 otherwise.
 */
const [url, timeoutText = "2000"] = process.argv.slice(2);

async function probe(): Promise<number> {
  if (url === undefined) {
    process.stderr.write("usage: probe.js URL [TIMEOUT_MS]\n");
    return 2;
  }
  const uid = process.getuid?.();
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(Number(timeoutText)) });
    const body = await response.text();
    process.stdout.write(JSON.stringify({ ok: true, status: response.status, body, uid }) + "\n");
    return 0;
  } catch (error) {
    const cause = (error as Error & { cause?: Error }).cause;
    const message = cause?.message ?? (error as Error).message;
    process.stdout.write(JSON.stringify({ ok: false, error: message, uid }) + "\n");
    return 1;
  }
}

// Exit at once: an aborted fetch leaves a connection attempt that would keep Node alive for seconds.
process.exit(await probe());
