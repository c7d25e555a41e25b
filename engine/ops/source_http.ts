/**
 * `http://` / `https://` sources (what `ADD <url>` uses): one downloaded file in a new snapshot,
 * like BuildKit's source/http. With `http.checksum` the cache key is the op digest plus the
 * checksum (no network); otherwise the file is downloaded (or an ETag recorded under
 * `<storeRoot>/http-cache/` is revalidated with HEAD / If-None-Match) and the key is the content
 * digest, file name and Last-Modified. The file is named by `http.filename`, else the response's
 * Content-Disposition, else the URL's basename; mode `http.perm` (default 0600), owner
 * `http.uid`/`http.gid`, mtime from Last-Modified (else the epoch).
 */
import { createHash, randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import path from "node:path";
import type { Vertex } from "../llb/load.ts";
import type { OpHandler, Ref } from "../solver/solver.ts";
import type { VertexProgress } from "../solver/progress.ts";
import type { RefViews } from "./refs.ts";

export type HttpEnv = {
  views: RefViews;
  storeRoot: string;
  /** Build secrets (id → file path, or `env:NAME`), for `http.authheadersecret` and HTTP_AUTH_* secrets. */
  secrets?: Map<string, string>;
  signal?: AbortSignal;
};

/** Headers users may set through `http.header.<name>` (BuildKit drops every other one). */
const USER_HEADERS = new Set(["Accept", "User-Agent"]);
const USER_AGENT = "tsk";
/** How many ETag records are kept per URL (and attrs). */
const MAX_RECORDS = 8;

type HttpSpec = {
  url: string;
  checksum?: { algo: string; hex: string; text: string };
  filename: string;
  perm: number;
  uid: number;
  gid: number;
  headers: [string, string][];
  authHeaderSecret: string;
};

/** What the ETag cache remembers about one download. */
type CacheRecord = {
  etag: string;
  digest: string;
  filename: string;
  lastModified?: string;
  ref?: string;
};

type Resolved = { digest: string; filename: string; lastModified?: string; ref?: string };

/** Go's strconv.ParseInt(s, 0, 64): `0x`, `0o`, `0b` and leading-`0` octal prefixes, `_` separators. */
export function parseGoInt(s: string): number {
  let t = s.trim();
  let neg = false;
  if (t.startsWith("+") || t.startsWith("-")) {
    neg = t[0] === "-";
    t = t.slice(1);
  }
  let base = 10;
  if (/^0[xX]/.test(t)) [base, t] = [16, t.slice(2)];
  else if (/^0[oO]/.test(t)) [base, t] = [8, t.slice(2)];
  else if (/^0[bB]/.test(t)) [base, t] = [2, t.slice(2)];
  else if (t.length > 1 && t[0] === "0") [base, t] = [8, t.slice(1)];
  t = t.replaceAll("_", "");
  const digits = { 2: /^[01]+$/, 8: /^[0-7]+$/, 10: /^[0-9]+$/, 16: /^[0-9a-fA-F]+$/ }[base]!;
  if (!digits.test(t)) throw new Error(`invalid integer ${JSON.stringify(s)}`);
  const n = Number.parseInt(t, base);
  return neg ? -n : n;
}

const DIGEST_ALGOS: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

function parseDigest(s: string): { algo: string; hex: string; text: string } {
  const m = /^([a-z0-9]+):([a-f0-9]+)$/.exec(s);
  if (!m || DIGEST_ALGOS[m[1]] !== m[2].length) {
    throw new Error(`invalid http.checksum ${JSON.stringify(s)}: want sha256:<64 hex>`);
  }
  return { algo: m[1], hex: m[2], text: s };
}

/** Go's http.CanonicalHeaderKey for the simple cases: `user-agent` → `User-Agent`. */
function canonicalHeader(name: string): string {
  return name.toLowerCase().replace(
    /(^|-)([a-z])/g,
    (_m, p: string, c: string) => p + c.toUpperCase(),
  );
}

/** The op's attrs, validated like BuildKit's http Identifier(). */
export function parseHttpSpec(v: Vertex): HttpSpec {
  const src = v.op.source!;
  const url = src.identifier ?? "";
  if (!/^https?:\/\//i.test(url)) {
    throw new Error(`invalid http source identifier ${JSON.stringify(url)}`);
  }
  const spec: HttpSpec = {
    url,
    filename: "",
    perm: 0,
    uid: 0,
    gid: 0,
    headers: [],
    authHeaderSecret: "",
  };
  const attrs = src.attrs ?? {};
  for (const [k, val] of Object.entries(attrs)) {
    switch (k) {
      case "http.checksum":
        spec.checksum = parseDigest(val);
        break;
      case "http.filename":
        spec.filename = val;
        break;
      case "http.perm":
        spec.perm = parseGoInt(val);
        break;
      case "http.uid":
        spec.uid = parseGoInt(val);
        break;
      case "http.gid":
        spec.gid = parseGoInt(val);
        break;
      case "http.authheadersecret":
        spec.authHeaderSecret = val;
        break;
      default:
        if (k.startsWith("http.header.")) {
          const name = canonicalHeader(k.slice("http.header.".length));
          if (USER_HEADERS.has(name)) spec.headers.push([name, val]);
        }
    }
  }
  spec.headers.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return spec;
}

/** BuildKit's pathutil.SafeFileName: the last element of the cleaned path, never empty/`.`/`/`. */
export function safeFileName(name: string): string {
  const base = path.posix.basename(path.posix.join("/", name));
  return base === "" || base === "." || base === "/" || base === ".." ? "download" : base;
}

/** The `filename` parameter of a Content-Disposition header (RFC 6266, incl. `filename*`). */
export function dispositionFilename(header: string): string | undefined {
  const params = new Map<string, string>();
  const re = /;\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
  for (const m of header.matchAll(re)) {
    let value = m[2].trim();
    if (value.startsWith('"')) value = value.slice(1, -1).replace(/\\(.)/g, "$1");
    params.set(m[1].toLowerCase(), value);
  }
  const ext = params.get("filename*");
  if (ext) {
    const m = /^([^']*)'[^']*'(.*)$/.exec(ext);
    if (m && /^(utf-8|us-ascii)$/i.test(m[1])) {
      try {
        return decodeURIComponent(m[2]);
      } catch {
        // fall through to filename
      }
    }
  }
  return params.get("filename");
}

/** BuildKit's getFileName: the attr, else Content-Disposition, else the URL path's basename. */
export function fileNameFor(url: string, manual: string, headers?: Headers): string {
  if (manual) return safeFileName(manual);
  const cd = headers?.get("content-disposition");
  if (cd) {
    const f = dispositionFilename(cd);
    if (f && !f.endsWith("/")) {
      const base = path.posix.basename(f.replaceAll("\\", "/"));
      if (base) return safeFileName(base);
    }
  }
  try {
    const base = path.posix.basename(decodeURIComponent(new URL(url).pathname));
    if (base !== "" && base !== "." && base !== "/") return safeFileName(base);
  } catch {
    // not a parseable URL: fall through
  }
  return safeFileName("");
}

/** Reads a build secret: a file path, or `env:NAME`. Undefined when absent. */
export async function readSecret(
  secrets: Map<string, string> | undefined,
  id: string,
): Promise<string | undefined> {
  const src = secrets?.get(id);
  if (src === undefined) return undefined;
  if (src.startsWith("env:")) return process.env[src.slice(4)];
  return await fsp.readFile(src, "utf8");
}

/** `user:pass@` removed from a URL, for messages. */
export function redactURL(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, "$1");
}

function etagValue(v: string | null): string {
  return (v ?? "").replace(/^W\//, "");
}

function httpDateMs(s: string | undefined): number | undefined {
  if (!s) return undefined;
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : t;
}

export function httpHandler(v: Vertex, env: HttpEnv): OpHandler {
  let spec: HttpSpec | undefined;
  const getSpec = () => (spec ??= parseHttpSpec(v));
  let resolved: Promise<Resolved> | undefined;
  const resolve = () => (resolved ??= resolveMetadata(getSpec(), env));

  return {
    cacheable: true,
    heavy: false,
    async baseKey(): Promise<string> {
      const s = getSpec();
      if (s.checksum) return `${v.digest}:${s.checksum.text}`;
      const r = await resolve();
      return `${v.digest}:${JSON.stringify([r.digest, r.filename, r.lastModified ?? ""])}`;
    },
    contentSelectors: () => new Map(),
    exists: async (refs) =>
      (await Promise.all(refs.map((r) => env.views.exists(r)))).every(Boolean),
    async run(_inputs: Ref[], vp: VertexProgress): Promise<Ref[]> {
      const s = getSpec();
      if (s.checksum) {
        // A download recorded earlier with this exact content is reused without network.
        for (const rec of await readRecords(env, s)) {
          if (rec.digest === s.checksum.text && rec.ref && await env.views.exists(rec.ref)) {
            return [rec.ref];
          }
        }
        const res = await request(s, env, "GET");
        const saved = await save(s, env, res, vp, s.checksum.text);
        return [saved.ref];
      }
      const r = await resolve();
      if (r.ref && await env.views.exists(r.ref)) return [r.ref];
      const res = await request(s, env, "GET");
      const saved = await save(s, env, res, vp, r.digest);
      return [saved.ref];
    },
  };
}

async function authHeader(s: HttpSpec, env: HttpEnv): Promise<string | undefined> {
  if (s.authHeaderSecret) {
    const v = await readSecret(env.secrets, s.authHeaderSecret);
    if (v === undefined) {
      throw new Error(`failed to retrieve HTTP auth secret ${s.authHeaderSecret}: not found`);
    }
    return v;
  }
  const host = new URL(s.url).hostname;
  let out: string | undefined;
  const header = await readSecret(env.secrets, `HTTP_AUTH_HEADER_${host}`).catch(() => undefined);
  if (header !== undefined) out = header;
  const token = await readSecret(env.secrets, `HTTP_AUTH_TOKEN_${host}`).catch(() => undefined);
  if (token !== undefined) out = "Bearer " + token;
  return out;
}

async function request(
  s: HttpSpec,
  env: HttpEnv,
  method: "GET" | "HEAD",
  extra: Record<string, string> = {},
): Promise<Response> {
  const headers = new Headers({ "User-Agent": USER_AGENT });
  for (const [k, val] of s.headers) headers.set(k, val);
  const auth = await authHeader(s, env);
  if (auth !== undefined) headers.set("Authorization", auth);
  for (const [k, val] of Object.entries(extra)) headers.set(k, val);
  let res: Response;
  try {
    res = await fetch(s.url, { method, headers, redirect: "follow", signal: env.signal });
  } catch (err) {
    const cause = (err as { cause?: { message?: string; code?: string } }).cause;
    const detail = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new Error(`failed to fetch ${redactURL(s.url)}: ${detail}`);
  }
  if (method === "GET" && res.status !== 304 && !res.ok) {
    await res.body?.cancel().catch(() => {});
    const text = res.statusText ? ` ${res.statusText}` : "";
    throw new Error(`invalid response status ${res.status}${text} for ${redactURL(s.url)}`);
  }
  return res;
}

/** The key of this URL + output attrs in the ETag cache (BuildKit's urlHash). */
function urlHash(s: HttpSpec): string {
  const j = JSON.stringify([
    s.url,
    s.filename,
    s.perm,
    s.uid,
    s.gid,
    s.authHeaderSecret,
    s.headers,
  ]);
  return createHash("sha256").update(j).digest("hex");
}

function recordsPath(env: HttpEnv, s: HttpSpec): string {
  return path.join(env.storeRoot, "http-cache", `${urlHash(s)}.json`);
}

async function readRecords(env: HttpEnv, s: HttpSpec): Promise<CacheRecord[]> {
  try {
    const x = JSON.parse(await fsp.readFile(recordsPath(env, s), "utf8"));
    return Array.isArray(x) ? x.filter((r) => r && typeof r.digest === "string") : [];
  } catch {
    return [];
  }
}

async function addRecord(env: HttpEnv, s: HttpSpec, rec: CacheRecord): Promise<void> {
  const file = recordsPath(env, s);
  const old = await readRecords(env, s);
  const list = [rec, ...old.filter((r) => r.etag !== rec.etag)].slice(0, MAX_RECORDS);
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${randomBytes(4).toString("hex")}`;
  await fsp.writeFile(tmp, JSON.stringify(list));
  await fsp.rename(tmp, file);
}

/**
 * Resolves the content digest without a checksum: an ETag recorded earlier is revalidated (HEAD
 * with manual ETag comparison, then a conditional GET); otherwise the file is downloaded into a
 * snapshot that run() returns.
 */
async function resolveMetadata(s: HttpSpec, env: HttpEnv): Promise<Resolved> {
  const byEtag = new Map<string, CacheRecord>();
  for (const rec of await readRecords(env, s)) {
    if (rec.etag && !byEtag.has(rec.etag) && (!rec.ref || await env.views.exists(rec.ref))) {
      byEtag.set(rec.etag, rec);
    }
  }
  const onlyETag = byEtag.size === 1 ? [...byEtag.keys()][0] : "";
  const fromRecord = (rec: CacheRecord, headers: Headers): Resolved => ({
    digest: rec.digest,
    filename: (s.filename || headers.get("content-disposition"))
      ? fileNameFor(s.url, s.filename, headers)
      : rec.filename,
    lastModified: rec.lastModified,
    ref: rec.ref,
  });
  let extra: Record<string, string> = {};
  if (byEtag.size > 0) {
    extra = { "If-None-Match": [...byEtag.keys()].join(", ") };
    // Some servers mishandle If-None-Match but send ETags: compare a HEAD response's ETag first.
    const head = await request(s, env, "HEAD", { ...extra, "Accept-Encoding": "gzip" }).catch(() =>
      undefined
    );
    if (head && (head.status === 200 || head.status === 304)) {
      let tag = etagValue(head.headers.get("etag"));
      if (!tag && onlyETag && head.status === 304) tag = onlyETag;
      const rec = byEtag.get(tag);
      if (rec) return fromRecord(rec, head.headers);
    }
  }
  const res = await request(s, env, "GET", extra);
  if (res.status === 304) {
    let tag = etagValue(res.headers.get("etag"));
    if (!tag && onlyETag) tag = onlyETag;
    const rec = byEtag.get(tag);
    if (!rec) {
      throw new Error(`invalid not-modified ETag ${JSON.stringify(tag)} from ${redactURL(s.url)}`);
    }
    return fromRecord(rec, res.headers);
  }
  const saved = await save(s, env, res, undefined, undefined);
  return {
    digest: saved.digest,
    filename: saved.filename,
    lastModified: saved.lastModified,
    ref: saved.ref,
  };
}

type Saved = { ref: string; digest: string; filename: string; lastModified?: string };

/**
 * Streams the response body into a file in a new snapshot (hashing on the way), applies mode,
 * owner and mtime, verifies `expected` and commits. Records the ETag for later revalidation.
 */
async function save(
  s: HttpSpec,
  env: HttpEnv,
  res: Response,
  vp: VertexProgress | undefined,
  expected: string | undefined,
): Promise<Saved> {
  const algo = expected ? expected.slice(0, expected.indexOf(":")) : "sha256";
  const hash = createHash(algo);
  const filename = fileNameFor(s.url, s.filename, res.headers);
  const perm = s.perm || 0o600;
  const lastModified = res.headers.get("last-modified") ?? undefined;
  const { key, root } = await env.views.prepare(null);
  let committed = false;
  try {
    const file = path.join(root, filename);
    const fh = await fsp.open(file, "w", perm);
    const total = Number(res.headers.get("content-length") ?? "0");
    let done = 0;
    let lastReport = 0;
    try {
      if (res.body) {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          hash.update(chunk);
          let off = 0;
          while (off < chunk.length) {
            off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
          }
          done += chunk.length;
          if (vp && done - lastReport >= 8 << 20) {
            lastReport = done;
            vp.status(
              `downloading ${redactURL(s.url)}: ${(done / 1e6).toFixed(1)}MB${
                total ? ` / ${(total / 1e6).toFixed(1)}MB` : ""
              }`,
            );
          }
        }
      }
      await fh.chmod(perm);
      if (s.uid !== 0 || s.gid !== 0) await fh.chown(s.uid, s.gid);
    } finally {
      await fh.close();
    }
    const mtime = new Date(httpDateMs(lastModified) ?? 0);
    await fsp.utimes(file, mtime, mtime);
    const digest = `${algo}:${hash.digest("hex")}`;
    if (expected && digest !== expected) {
      throw new Error(
        s.checksum
          ? `digest mismatch for ${redactURL(s.url)}: ${digest} (expected: ${expected})`
          : `content of ${
            redactURL(s.url)
          } changed during the build: ${digest} (expected: ${expected})`,
      );
    }
    const ref = await env.views.commit(key);
    committed = true;
    const etag = etagValue(res.headers.get("etag"));
    if (etag) {
      const sha = algo === "sha256" ? digest : undefined;
      if (sha) {
        await addRecord(env, s, { etag, digest: sha, filename, lastModified, ref }).catch(() => {});
      }
    }
    return { ref, digest, filename, lastModified };
  } catch (err) {
    if (!committed) await env.views.discard(key).catch(() => {});
    await res.body?.cancel().catch(() => {});
    throw err;
  }
}
