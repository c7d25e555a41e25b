/**
 * The HTTP server of scripts/parity.ts's ADD <url> cases, as its own process (parity.ts waits in
 * spawnSync while docker fetches): `deno run -A scripts/parity_http.ts DIR` serves DIR's files
 * with Last-Modified from their mtimes on 127.0.0.1 and prints the port.
 */
import { createServer } from "node:http";
import { existsSync, lstatSync, readFileSync } from "node:fs";
import path from "node:path";
import process from "node:process";

const dir = path.resolve(process.argv[2]);
const server = createServer((req, res) => {
  const p = path.join(dir, decodeURIComponent(new URL(req.url!, "http://x").pathname));
  if (!p.startsWith(dir + "/") || !existsSync(p) || lstatSync(p).isDirectory()) {
    res.writeHead(404).end();
    return;
  }
  const body = readFileSync(p);
  res.writeHead(200, {
    "Content-Length": body.length,
    "Last-Modified": new Date(lstatSync(p).mtimeMs).toUTCString(),
    "Content-Type": "application/octet-stream",
  });
  res.end(req.method === "HEAD" ? undefined : body);
});
server.listen(0, "127.0.0.1", () => {
  console.log((server.address() as { port: number }).port);
});
