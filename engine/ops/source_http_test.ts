import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { promises as fsp } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import type { AddressInfo } from "node:net";
import { http as httpSource, type HTTPOptions } from "../llb/source.ts";
import { marshalDefinition } from "../llb/marshal.ts";
import { loadDefinition, type Vertex } from "../llb/load.ts";
import { CopySnapshotter } from "../snapshot/snapshotter.ts";
import type { VertexProgress } from "../solver/progress.ts";
import { RefViews } from "./refs.ts";
import { dispositionFilename, fileNameFor, httpHandler, parseGoInt } from "./source_http.ts";

const LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT";

type Served = { body: string; etag?: string; headers?: Record<string, string> };
const files = new Map<string, Served>();
const hits: { method: string; path: string; inm?: string; ua?: string; accept?: string }[] = [];
let server: http.Server;
let base = "";
let dir = "";
let views: RefViews;

const sha = (s: string) => "sha256:" + createHash("sha256").update(s).digest("hex");

before(async () => {
  server = http.createServer((req, res) => {
    const p = new URL(req.url ?? "/", "http://x").pathname;
    hits.push({
      method: req.method ?? "",
      path: p,
      inm: req.headers["if-none-match"] as string | undefined,
      ua: req.headers["user-agent"] as string | undefined,
      accept: req.headers["accept"] as string | undefined,
    });
    if (p === "/redirect") {
      res.writeHead(302, { Location: "/dir/file.txt" });
      return res.end();
    }
    const f = files.get(p);
    if (!f) {
      res.writeHead(404);
      return res.end("not found");
    }
    const headers: Record<string, string> = { "Last-Modified": LAST_MODIFIED, ...f.headers };
    if (f.etag) headers["ETag"] = f.etag;
    const inm = req.headers["if-none-match"];
    if (f.etag && typeof inm === "string" && inm.split(/,\s*/).includes(f.etag)) {
      res.writeHead(304, headers);
      return res.end();
    }
    headers["Content-Length"] = String(Buffer.byteLength(f.body));
    res.writeHead(200, headers);
    res.end(req.method === "HEAD" ? undefined : f.body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), "tsk-http-"));
  views = new RefViews(new CopySnapshotter(path.join(dir, "snapshots")), dir);
});

after(async () => {
  server.closeAllConnections?.();
  await new Promise<void>((r) => server.close(() => r()));
  await fsp.rm(dir, { recursive: true, force: true });
});

function vertex(url: string, opts: HTTPOptions = {}, attrs?: Record<string, string>): Vertex {
  const v = loadDefinition(marshalDefinition(httpSource(url, opts))).root;
  if (attrs) v.op.source!.attrs = { ...(v.op.source!.attrs ?? {}), ...attrs };
  return v;
}

const env = () => ({ views, storeRoot: path.join(dir, "store") });

const vp: VertexProgress = {
  id: 1,
  log() {},
  status() {},
  tail: () => [],
  done() {},
  error() {},
};

/** The single file of a result snapshot: name, content, mode, ids, mtime. */
async function only(ref: string | null) {
  assert.ok(ref);
  const view = await views.view(ref);
  try {
    const names = await fsp.readdir(view.root);
    assert.equal(names.length, 1, `one file expected, got ${names.join(",")}`);
    const file = path.join(view.root, names[0]);
    const st = await fsp.lstat(file);
    return {
      name: names[0],
      content: await fsp.readFile(file, "utf8"),
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      mtime: st.mtimeMs,
    };
  } finally {
    await view.release();
  }
}

test("parseGoInt follows strconv.ParseInt base 0", () => {
  assert.equal(parseGoInt("0644"), 0o644);
  assert.equal(parseGoInt("0o755"), 0o755);
  assert.equal(parseGoInt("0x1ff"), 0o777);
  assert.equal(parseGoInt("1000"), 1000);
  assert.equal(parseGoInt("0"), 0);
  assert.throws(() => parseGoInt("09"));
  assert.throws(() => parseGoInt("abc"));
});

test("file names: attr, Content-Disposition, URL basename, fallback", () => {
  assert.equal(fileNameFor("http://h/a/b.tar.gz?x=1", ""), "b.tar.gz");
  assert.equal(fileNameFor("http://h/a/b.tar.gz", "../../etc/passwd"), "passwd");
  assert.equal(fileNameFor("http://h/", ""), "download");
  assert.equal(fileNameFor("http://h", ""), "download");
  assert.equal(
    fileNameFor(
      "http://h/x",
      "",
      new Headers({ "Content-Disposition": 'attachment; filename="../r.bin"' }),
    ),
    "r.bin",
  );
  assert.equal(
    dispositionFilename("attachment; filename*=UTF-8''na%C3%AFve.txt; filename=x"),
    "naïve.txt",
  );
  assert.equal(dispositionFilename("inline"), undefined);
});

test("checksum: key needs no network, matching content is saved with default mode 0600", async () => {
  files.set("/dir/file.txt", { body: "hello\n" });
  const url = `${base}/dir/file.txt`;
  const v = vertex(url, { checksum: sha("hello\n") });
  const h = httpHandler(v, env());
  const before = hits.length;
  assert.equal(await h.baseKey(), `${v.digest}:${sha("hello\n")}`);
  assert.equal(hits.length, before, "no request for the key");
  assert.equal(h.cacheable, true);
  const [ref] = await h.run([], vp);
  const f = await only(ref);
  assert.equal(f.name, "file.txt");
  assert.equal(f.content, "hello\n");
  assert.equal(f.mode, 0o600);
  assert.equal(f.mtime, Date.parse(LAST_MODIFIED));
  assert.equal(await h.exists([ref]), true);
});

test("checksum mismatch names the URL, expected and actual digests", async () => {
  files.set("/dir/bad.txt", { body: "actual\n" });
  const url = `${base}/dir/bad.txt`;
  const want = sha("expected\n");
  const h = httpHandler(vertex(url, { checksum: want }), env());
  await h.baseKey();
  await assert.rejects(h.run([], vp), (err: Error) => {
    assert.match(err.message, /digest mismatch/);
    assert.ok(err.message.includes(url), err.message);
    assert.ok(err.message.includes(want), err.message);
    assert.ok(err.message.includes(sha("actual\n")), err.message);
    return true;
  });
  await assert.rejects(
    httpHandler(vertex(url, {}, { "http.checksum": "md5:abc" }), env()).baseKey(),
    /invalid http.checksum/,
  );
});

test("filename, perm, uid and gid attrs", async () => {
  files.set("/dir/tool", { body: "#!/bin/sh\n" });
  const v = vertex(`${base}/dir/tool`, { filename: "run.sh", perm: 0o755, uid: 1234, gid: 2345 });
  const h = httpHandler(v, env());
  await h.baseKey();
  const f = await only((await h.run([], vp))[0]);
  assert.deepEqual([f.name, f.content, f.mode, f.uid, f.gid], [
    "run.sh",
    "#!/bin/sh\n",
    0o755,
    1234,
    2345,
  ]);
});

test("without ETag: key is stable for the same content and changes with it", async () => {
  files.set("/plain.txt", { body: "one" });
  const url = `${base}/plain.txt`;
  const k1 = await httpHandler(vertex(url), env()).baseKey();
  const k2 = await httpHandler(vertex(url), env()).baseKey();
  assert.equal(k1, k2);
  files.set("/plain.txt", { body: "two" });
  const h3 = httpHandler(vertex(url), env());
  const k3 = await h3.baseKey();
  assert.notEqual(k3, k1);
  // run reuses the download made for the key
  const gets = hits.filter((x) => x.method === "GET").length;
  const f = await only((await h3.run([], vp))[0]);
  assert.equal(f.content, "two");
  assert.equal(hits.filter((x) => x.method === "GET").length, gets);
});

test("with ETag: a recorded download is revalidated by HEAD, not downloaded again", async () => {
  files.set("/etag.bin", { body: "v1", etag: '"e1"' });
  const url = `${base}/etag.bin`;
  const h1 = httpHandler(vertex(url), env());
  const k1 = await h1.baseKey();
  const [r1] = await h1.run([], vp);
  assert.equal((await only(r1)).content, "v1");

  const start = hits.length;
  const h2 = httpHandler(vertex(url), env());
  assert.equal(await h2.baseKey(), k1);
  const after1 = hits.slice(start);
  assert.deepEqual(after1.map((x) => x.method), ["HEAD"]);
  assert.equal(after1[0].inm, '"e1"');
  assert.deepEqual(await h2.run([], vp), [r1], "the recorded snapshot is reused");

  files.set("/etag.bin", { body: "v2", etag: '"e2"' });
  const h3 = httpHandler(vertex(url), env());
  const k3 = await h3.baseKey();
  assert.notEqual(k3, k1);
  assert.equal((await only((await h3.run([], vp))[0])).content, "v2");

  // Several recorded ETags: all are offered and the one the server answers with is used.
  const start4 = hits.length;
  const h4 = httpHandler(vertex(url), env());
  assert.equal(await h4.baseKey(), k3);
  assert.deepEqual(hits.slice(start4).map((x) => [x.method, x.inm]), [["HEAD", '"e2", "e1"']]);
});

test("Last-Modified is part of the key (it sets the mtime)", async () => {
  files.set("/lm.txt", { body: "same" });
  const url = `${base}/lm.txt`;
  const k1 = await httpHandler(vertex(url), env()).baseKey();
  files.set("/lm.txt", {
    body: "same",
    headers: { "Last-Modified": "Thu, 22 Oct 2015 07:28:00 GMT" },
  });
  const k2 = await httpHandler(vertex(url), env()).baseKey();
  assert.notEqual(k1, k2);
});

test("redirects are followed; the name comes from the original URL", async () => {
  files.set("/dir/file.txt", { body: "hello\n" });
  const h = httpHandler(vertex(`${base}/redirect`, { checksum: sha("hello\n") }), env());
  const f = await only((await h.run([], vp))[0]);
  assert.deepEqual([f.name, f.content], ["redirect", "hello\n"]);
});

test("Content-Disposition names the file; user headers Accept and User-Agent are sent", async () => {
  files.set("/cd", {
    body: "x",
    headers: { "Content-Disposition": 'attachment; filename="real.bin"' },
  });
  const v = vertex(`${base}/cd`, {}, {
    "http.header.accept": "application/x-tsk",
    "http.header.x-other": "dropped",
  });
  const h = httpHandler(v, env());
  await h.baseKey();
  const f = await only((await h.run([], vp))[0]);
  assert.equal(f.name, "real.bin");
  const hit = hits.filter((x) => x.path === "/cd").at(-1)!;
  assert.equal(hit.accept, "application/x-tsk");
  assert.equal(hit.ua, "tsk");
});

test("HTTP errors report the status and the URL", async () => {
  const url = `${base}/nope`;
  await assert.rejects(httpHandler(vertex(url), env()).baseKey(), (err: Error) => {
    assert.ok(err.message.includes("404"), err.message);
    assert.ok(err.message.includes(url), err.message);
    return true;
  });
  await assert.rejects(
    httpHandler(vertex(url, { checksum: sha("x") }), env()).run([], vp),
    /404.*\/nope/,
  );
  // unreachable server
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  await assert.rejects(
    httpHandler(vertex(`http://127.0.0.1:${port}/x`), env()).baseKey(),
    /failed to fetch http:\/\/127\.0\.0\.1/,
  );
});
