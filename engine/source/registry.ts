/**
 * Registry HTTP API v2 client: resolve (OCI index / Docker manifest list → platform manifest →
 * config), blob fetch into the content store (streamed, verified, redirects followed without
 * leaking credentials), and push (HEAD to skip, POST + streaming PUT or chunked PATCH, then the
 * manifest). Auth: `WWW-Authenticate` Bearer (token endpoint, basic creds or an identity token
 * when configured, anonymous otherwise; tokens cached per scope) and Basic. Plain HTTP is used
 * for loopback hosts and hosts listed in `insecure`; HTTPS otherwise.
 */

import { open } from "node:fs/promises";
import type { ContentStore } from "../content/store.ts";
import { digestOf, validateDigest } from "../content/store.ts";
import type { Descriptor, Platform } from "../types.ts";
import { basicAuth, type Credentials, getCredentials } from "./auth.ts";
import { isIndex, isManifest, MANIFEST_ACCEPT, MediaTypes } from "./media_types.ts";
import { parseReference, type Reference } from "./reference.ts";
import { type ChunkTap, SharedDownloads } from "./shared_download.ts";

export type RegistryClientOptions = {
  store: ContentStore;
  /** Hosts (`host` or `host:port`) allowed over plain http; loopback hosts always are. */
  insecure?: string[];
  userAgent?: string;
  /** Docker config dir for credentials (default `$DOCKER_CONFIG` or `~/.docker`). */
  configDir?: string;
  /** Environment for credential lookup (DOCKER_CONFIG, HOME, PATH); default process.env. */
  env?: Record<string, string | undefined>;
  /** Explicit credentials per registry host; take precedence over the docker config. */
  credentials?: Record<string, Credentials>;
  /** Upload blobs in PATCH chunks of this many bytes instead of one streaming PUT. */
  chunkSize?: number;
  /** Parallel blob transfers during push (default 3). */
  concurrency?: number;
};

export type ResolvedImage = {
  /** Canonical `domain/path@<manifestDigest>`. */
  ref: string;
  /** Digest of the platform-specific image manifest. */
  manifestDigest: string;
  /** Media type of that manifest (OCI or Docker schema2). */
  manifestMediaType: string;
  /** Digest of the index / manifest list the manifest was picked from, if any. */
  indexDigest?: string;
  manifest: ImageManifest;
  /** Parsed image config. */
  config: ImageConfig;
  configDescriptor: Descriptor;
  layers: Descriptor[];
};

/** The resolved view of `manifest` (digest `digest`), picked from index `indexDigest` if any. */
export function resolvedImage(
  ref: string,
  digest: string,
  mediaType: string,
  manifest: ImageManifest,
  config: ImageConfig,
  indexDigest?: string,
): ResolvedImage {
  const out: ResolvedImage = {
    ref,
    manifestDigest: digest,
    manifestMediaType: mediaType,
    manifest,
    config,
    configDescriptor: manifest.config,
    layers: manifest.layers,
  };
  if (indexDigest) out.indexDigest = indexDigest;
  return out;
}

export type ImageManifest = {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
};

export type ImageIndex = {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
};

export type ImageConfig = {
  architecture?: string;
  os?: string;
  variant?: string;
  config?: Record<string, unknown>;
  rootfs?: { type: string; diff_ids: string[] };
  history?: Array<Record<string, unknown>>;
  [k: string]: unknown;
};

export type FetchedManifest = { digest: string; mediaType: string; bytes: Uint8Array };

/** Sees each chunk of a blob download in order; the download waits for the returned promise. */
export type BlobTap = ChunkTap;

/** A response body whose chunks go through `tap` on their way to the store. */
async function* tapped(body: ReadableStream<Uint8Array>, tap: BlobTap): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      await tap(value);
      yield value;
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => {});
  }
}

export type PushImage = {
  manifest: Uint8Array;
  manifestMediaType: string;
  /** Config + layers (for an index: nothing, push its manifests first), all in the store. */
  blobs: Descriptor[];
};

/** An error answered by a registry (or about talking to one). */
export class RegistryError extends Error {
  status?: number;
  /** Distribution error code, e.g. MANIFEST_UNKNOWN, DENIED, UNAUTHORIZED. */
  code?: string;
  /** The registry (or its token server) could not be reached: no HTTP answer at all. */
  unreachable?: boolean;
  ref: string;
  constructor(message: string, ref: string, status?: number, code?: string) {
    super(message);
    this.name = "RegistryError";
    this.ref = ref;
    if (status !== undefined) this.status = status;
    if (code !== undefined) this.code = code;
  }
}

type Challenge = { scheme: "bearer"; realm: string; service?: string } | { scheme: "basic" };
type Token = { value: string; expires: number };

const MAX_MANIFEST = 4 * 1024 * 1024;
const READ_CHUNK = 1024 * 1024;

/** Parses a `WWW-Authenticate` header into its first Bearer or Basic challenge. */
export function parseWwwAuthenticate(
  header: string | null,
): { scheme: string; params: Record<string, string> } | undefined {
  if (!header) return undefined;
  const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?\s*/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2])) !== null) {
    if (p[0] === "") break;
    params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : p[3];
  }
  return { scheme: m[1].toLowerCase(), params };
}

function normArch(a: string): string {
  const map: Record<string, string> = {
    x86_64: "amd64",
    x86: "386",
    aarch64: "arm64",
    armhf: "arm",
    armel: "arm",
  };
  return map[a] ?? a;
}

function platformString(p: Platform | undefined): string {
  if (!p) return "unknown";
  return `${p.os}/${p.architecture}${p.variant ? "/" + p.variant : ""}`;
}

/** Picks the descriptor matching `want` from an index; undefined if none. */
export function matchPlatform(manifests: Descriptor[], want: Platform): Descriptor | undefined {
  const arch = normArch(want.architecture);
  const candidates = manifests.filter((d) =>
    d.platform && d.platform.os === want.os && normArch(d.platform.architecture) === arch &&
    (isManifest(d.mediaType) || isIndex(d.mediaType) || d.mediaType === undefined)
  );
  const variantOf = (p: Platform) =>
    p.variant ?? (arch === "arm64" ? "v8" : arch === "arm" ? "v7" : "");
  if (want.variant) {
    const exact = candidates.find((d) => variantOf(d.platform!) === want.variant);
    if (exact) return exact;
    // arm/v7 can run v6 and v5 images: take the best lower variant.
    if (arch === "arm") {
      const wantN = Number(want.variant.replace(/^v/, ""));
      const lower = candidates
        .filter((d) => Number(variantOf(d.platform!).replace(/^v/, "")) <= wantN)
        .sort((a, b) =>
          Number(variantOf(b.platform!).replace(/^v/, "")) -
          Number(variantOf(a.platform!).replace(/^v/, ""))
        );
      return lower[0];
    }
    return undefined;
  }
  const defaultVariant = variantOf({ os: want.os, architecture: arch });
  return candidates.find((d) => variantOf(d.platform!) === defaultVariant) ?? candidates[0];
}

function isLoopback(host: string): boolean {
  const h = hostOnly(host);
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

function hostOnly(domain: string): string {
  if (domain.startsWith("[")) return domain.slice(1, domain.indexOf("]"));
  const i = domain.lastIndexOf(":");
  return i >= 0 ? domain.slice(0, i) : domain;
}

async function readLimited(res: Response, max: number, what: string): Promise<Uint8Array> {
  const len = Number(res.headers.get("content-length") ?? "NaN");
  if (len > max) {
    await res.body?.cancel();
    throw new Error(`${what} is too large (${len} bytes, limit ${max})`);
  }
  if (!res.body) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let n = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > max) {
      await reader.cancel();
      throw new Error(`${what} is too large (more than ${max} bytes)`);
    }
    parts.push(value);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

async function errorDetail(res: Response): Promise<{ code?: string; message: string }> {
  let text = "";
  try {
    text = new TextDecoder().decode(await readLimited(res, 64 * 1024, "error body"));
  } catch {
    // ignore
  }
  try {
    const j = JSON.parse(text) as {
      errors?: Array<{ code?: string; message?: string; detail?: unknown }>;
    };
    if (j.errors && j.errors.length) {
      const e = j.errors[0];
      const detail = e.detail !== undefined && typeof e.detail !== "object" ? ` (${e.detail})` : "";
      return { code: e.code, message: `${(e.message ?? e.code ?? "").trim()}${detail}` };
    }
  } catch {
    // not JSON
  }
  return { message: text.trim().slice(0, 300) || `HTTP ${res.status} ${res.statusText}`.trim() };
}

/** Registry HTTP API v2 client (pull and push). */
export class RegistryClient {
  #store: ContentStore;
  #insecure: Set<string>;
  #userAgent: string;
  #configDir?: string;
  #env?: Record<string, string | undefined>;
  #explicitCreds: Record<string, Credentials>;
  #chunkSize?: number;
  #concurrency: number;
  #challenges = new Map<string, Promise<Challenge | null>>();
  #tokens = new Map<string, Promise<Token>>();
  #creds = new Map<string, Promise<Credentials | undefined>>();
  #downloads = new SharedDownloads();
  /** Blobs not in the store that a push may mount from another repository (digest → ref). */
  #mountSources = new Map<string, string>();

  constructor(opts: RegistryClientOptions) {
    this.#store = opts.store;
    this.#insecure = new Set(opts.insecure ?? []);
    this.#userAgent = opts.userAgent ?? "tsk/0.1";
    this.#configDir = opts.configDir;
    this.#env = opts.env;
    this.#explicitCreds = opts.credentials ?? {};
    this.#chunkSize = opts.chunkSize;
    this.#concurrency = Math.max(1, opts.concurrency ?? 3);
  }

  /** Base URL of a registry host (`docker.io` → `https://registry-1.docker.io`). */
  baseUrl(domain: string): string {
    const host = domain === "docker.io" ? "registry-1.docker.io" : domain;
    const plain = isLoopback(domain) || this.#insecure.has(domain) ||
      this.#insecure.has(hostOnly(domain));
    return `${plain ? "http" : "https"}://${host}`;
  }

  // ---------------------------------------------------------------- auth

  #credentials(domain: string): Promise<Credentials | undefined> {
    let p = this.#creds.get(domain);
    if (!p) {
      p = this.#explicitCreds[domain]
        ? Promise.resolve(this.#explicitCreds[domain])
        : getCredentials(domain, { configDir: this.#configDir, env: this.#env });
      this.#creds.set(domain, p);
    }
    return p;
  }

  #challenge(domain: string, ref: string): Promise<Challenge | null> {
    let p = this.#challenges.get(domain);
    if (!p) {
      p = this.#ping(domain, ref);
      this.#challenges.set(domain, p);
      p.catch(() => this.#challenges.delete(domain));
    }
    return p;
  }

  async #ping(domain: string, ref: string): Promise<Challenge | null> {
    const url = `${this.baseUrl(domain)}/v2/`;
    let res: Response;
    try {
      res = await fetch(url, { headers: { "user-agent": this.#userAgent } });
    } catch (e) {
      throw unreachable(new RegistryError(`cannot reach registry ${url} for ${ref}: ${causeOf(e)}`, ref));
    }
    const ch = res.status === 401 ? this.#toChallenge(res.headers.get("www-authenticate")) : null;
    await res.body?.cancel();
    return ch;
  }

  #toChallenge(header: string | null): Challenge | null {
    const c = parseWwwAuthenticate(header);
    if (!c) return null;
    if (c.scheme === "bearer" && c.params.realm) {
      return { scheme: "bearer", realm: c.params.realm, service: c.params.service };
    }
    if (c.scheme === "basic") return { scheme: "basic" };
    return null;
  }

  async #authorization(
    domain: string,
    repo: string,
    actions: string[],
    ref: string,
    force: boolean,
  ): Promise<string | undefined> {
    const ch = await this.#challenge(domain, ref);
    if (!ch) return undefined;
    const creds = await this.#credentials(domain);
    if (ch.scheme === "basic") {
      if (creds?.username === undefined) return undefined;
      return `Basic ${basicAuth(creds.username, creds.password ?? "")}`;
    }
    if (creds?.registryToken) return `Bearer ${creds.registryToken}`;
    const scope = `repository:${repo}:${actions.join(",")}`;
    const key = `${ch.realm}|${ch.service ?? ""}|${scope}`;
    const cached = this.#tokens.get(key);
    if (cached && !force) {
      const t = await cached.catch(() => undefined);
      if (t && t.expires > Date.now()) return `Bearer ${t.value}`;
    }
    const p = this.#fetchToken(ch, scope, creds, domain, ref);
    this.#tokens.set(key, p);
    p.catch(() => {
      if (this.#tokens.get(key) === p) this.#tokens.delete(key);
    });
    return `Bearer ${(await p).value}`;
  }

  async #fetchToken(
    ch: { realm: string; service?: string },
    scope: string,
    creds: Credentials | undefined,
    domain: string,
    ref: string,
  ): Promise<Token> {
    let res: Response;
    try {
      if (creds?.identityToken) {
        const form = new URLSearchParams({
          grant_type: "refresh_token",
          refresh_token: creds.identityToken,
          client_id: "tsk",
          scope,
        });
        if (ch.service) form.set("service", ch.service);
        res = await fetch(ch.realm, {
          method: "POST",
          headers: {
            "content-type": "application/x-www-form-urlencoded",
            "user-agent": this.#userAgent,
          },
          body: form.toString(),
        });
      } else {
        const u = new URL(ch.realm);
        if (ch.service) u.searchParams.set("service", ch.service);
        u.searchParams.set("scope", scope);
        const headers: Record<string, string> = { "user-agent": this.#userAgent };
        if (creds?.username !== undefined) {
          headers.authorization = `Basic ${basicAuth(creds.username, creds.password ?? "")}`;
        }
        res = await fetch(u, { headers });
      }
    } catch (e) {
      throw unreachable(new RegistryError(
        `cannot reach token server ${ch.realm} for ${ref}: ${causeOf(e)}`,
        ref,
      ));
    }
    if (!res.ok) {
      const d = await errorDetail(res);
      const who = creds
        ? `the credentials configured for ${domain} were rejected`
        : `anonymous access refused`;
      throw new RegistryError(
        `authentication failed for ${ref}: ${who} by token server ${ch.realm} (HTTP ${res.status}: ${d.message})`,
        ref,
        res.status,
        "UNAUTHORIZED",
      );
    }
    const j = JSON.parse(
      new TextDecoder().decode(await readLimited(res, 1024 * 1024, "token response")),
    ) as {
      token?: string;
      access_token?: string;
      expires_in?: number;
    };
    const value = j.token || j.access_token;
    if (!value) {
      throw new RegistryError(`token server ${ch.realm} returned no token for ${ref}`, ref);
    }
    const ttl = Math.max(j.expires_in ?? 60, 60);
    return { value, expires: Date.now() + (ttl - 10) * 1000 };
  }

  /**
   * One authorized request. On 401 the challenge is refreshed and the request retried once
   * (only when the body can be replayed). GET/HEAD redirects are followed; credentials are
   * not sent to another origin.
   */
  async #request(
    ref: Reference,
    method: string,
    target: string,
    init: {
      actions: string[];
      headers?: Record<string, string>;
      body?: Uint8Array | string | (() => ReadableStream<Uint8Array>);
    },
  ): Promise<Response> {
    const url = /^https?:\/\//.test(target) ? target : `${this.baseUrl(ref.domain)}${target}`;
    const refStr = ref.toString();
    for (let attempt = 0;; attempt++) {
      const headers = new Headers(init.headers);
      headers.set("user-agent", this.#userAgent);
      const auth = await this.#authorization(
        ref.domain,
        ref.path,
        init.actions,
        refStr,
        attempt > 0,
      );
      if (auth) headers.set("authorization", auth);
      const body = typeof init.body === "function" ? init.body() : init.body;
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers,
          body,
          redirect: "manual",
          ...(body instanceof ReadableStream ? { duplex: "half" } : {}),
        } as RequestInit);
      } catch (e) {
        throw unreachable(new RegistryError(`${method} ${url} for ${refStr} failed: ${causeOf(e)}`, refStr));
      }
      if (res.status === 401 && attempt === 0) {
        const ch = this.#toChallenge(res.headers.get("www-authenticate"));
        if (ch) {
          await res.body?.cancel();
          this.#challenges.set(ref.domain, Promise.resolve(ch));
          continue;
        }
      }
      if (
        (method === "GET" || method === "HEAD") && [301, 302, 303, 307, 308].includes(res.status)
      ) {
        return this.#followRedirects(res, url, method, headers, refStr);
      }
      return res;
    }
  }

  async #followRedirects(
    res: Response,
    url: string,
    method: string,
    headers: Headers,
    refStr: string,
  ): Promise<Response> {
    let current = new URL(url);
    for (let hops = 0; hops < 10; hops++) {
      const loc = res.headers.get("location");
      if (!loc || ![301, 302, 303, 307, 308].includes(res.status)) return res;
      await res.body?.cancel();
      const next = new URL(loc, current);
      const h = new Headers(headers);
      if (next.origin !== new URL(url).origin) h.delete("authorization");
      current = next;
      try {
        res = await fetch(next, { method, headers: h, redirect: "manual" });
      } catch (e) {
        throw unreachable(new RegistryError(
          `${method} ${next} (redirected) for ${refStr} failed: ${causeOf(e)}`,
          refStr,
        ));
      }
    }
    throw new RegistryError(`too many redirects fetching ${url} for ${refStr}`, refStr);
  }

  async #fail(
    res: Response,
    ref: Reference,
    what: "pull" | "push",
    subject: string,
  ): Promise<never> {
    const d = await errorDetail(res);
    const refStr = ref.toString();
    if (res.status === 401 || res.status === 403) {
      const creds = await this.#credentials(ref.domain).catch(() => undefined);
      const why = creds
        ? `the credentials configured for ${ref.domain} were not accepted or lack ${what} access`
        : `no credentials configured for ${ref.domain}`;
      const msg = what === "pull"
        ? `pull access denied for ${ref.familiar}: repository does not exist or may require authorization (${why}): ${d.message}`
        : `push access denied for ${ref.familiar} (${why}): ${d.message}`;
      throw new RegistryError(
        msg,
        refStr,
        res.status,
        d.code ?? (res.status === 401 ? "UNAUTHORIZED" : "DENIED"),
      );
    }
    if (res.status === 404) {
      if (d.code === "NAME_UNKNOWN") {
        throw new RegistryError(
          `manifest unknown: ${refStr}: repository ${ref.name} not found`,
          refStr,
          404,
          d.code,
        );
      }
      if (subject.startsWith("manifest")) {
        throw new RegistryError(
          `manifest unknown: ${refStr}: ${d.message}`,
          refStr,
          404,
          d.code ?? "MANIFEST_UNKNOWN",
        );
      }
      throw new RegistryError(
        `${subject} unknown in ${refStr}: ${d.message}`,
        refStr,
        404,
        d.code ?? "BLOB_UNKNOWN",
      );
    }
    if (res.status === 429) {
      throw new RegistryError(
        `rate limited by ${ref.domain} while fetching ${subject} of ${refStr}: ${d.message}`,
        refStr,
        429,
        d.code,
      );
    }
    throw new RegistryError(
      `${what} ${subject} of ${refStr} failed: HTTP ${res.status}${
        d.code ? ` ${d.code}` : ""
      }: ${d.message}`,
      refStr,
      res.status,
      d.code,
    );
  }

  // ---------------------------------------------------------------- pull

  /**
   * Fetches the manifest (or index) that `ref` names, verifying its digest (against the ref's
   * digest, else the registry's Docker-Content-Digest). Not stored.
   */
  async getManifest(
    ref: string | Reference,
    actions: string[] = ["pull"],
  ): Promise<FetchedManifest> {
    const r = typeof ref === "string" ? parseReference(ref) : ref;
    const res = await this.#request(r, "GET", `/v2/${r.path}/manifests/${r.reference}`, {
      actions,
      headers: { accept: MANIFEST_ACCEPT },
    });
    if (!res.ok) await this.#fail(res, r, "pull", "manifest");
    const headerDigest = res.headers.get("docker-content-digest");
    const contentType = (res.headers.get("content-type") ?? "").split(";")[0].trim();
    const bytes = await readLimited(res, MAX_MANIFEST, `manifest of ${r}`);
    const digest = digestOf(bytes);
    if (r.digest && r.digest !== digest) {
      throw new RegistryError(
        `manifest digest mismatch for ${r}: registry sent content with digest ${digest}`,
        r.toString(),
      );
    }
    if (
      !r.digest && headerDigest && headerDigest.startsWith("sha256:") && headerDigest !== digest
    ) {
      throw new RegistryError(
        `manifest digest mismatch for ${r}: Docker-Content-Digest says ${headerDigest}, content is ${digest}`,
        r.toString(),
      );
    }
    let mediaType = contentType;
    try {
      const parsed = JSON.parse(new TextDecoder().decode(bytes)) as {
        mediaType?: string;
        schemaVersion?: number;
        manifests?: unknown;
      };
      if (parsed.mediaType) mediaType = parsed.mediaType;
      else if (!isIndex(mediaType) && !isManifest(mediaType)) {
        mediaType = parsed.manifests ? MediaTypes.ociIndex : MediaTypes.ociManifest;
      }
      if (parsed.schemaVersion === 1) mediaType = MediaTypes.dockerManifestV1;
    } catch {
      throw new RegistryError(`manifest of ${r} is not valid JSON`, r.toString());
    }
    return { digest, mediaType, bytes };
  }

  /** Resolves `ref` for `platform`: picks from an index, stores manifest(s) and config. */
  async resolve(ref: string, platform: Platform): Promise<ResolvedImage> {
    const r = parseReference(ref);
    let m = await this.getManifest(r);
    let indexDigest: string | undefined;
    const seen = new Set<string>();
    while (isIndex(m.mediaType)) {
      if (seen.has(m.digest)) throw new RegistryError(`index loop in ${r}`, r.toString());
      seen.add(m.digest);
      const index = JSON.parse(new TextDecoder().decode(m.bytes)) as ImageIndex;
      await this.#store.putBytes(m.bytes, { digest: m.digest });
      indexDigest ??= m.digest;
      const list = Array.isArray(index.manifests) ? index.manifests : [];
      const pick = matchPlatform(list, platform);
      if (!pick) {
        const avail = list
          .filter((d) => d.platform && d.platform.os !== "unknown")
          .map((d) => platformString(d.platform));
        throw new RegistryError(
          `no matching manifest for ${
            platformString(platform)
          } in ${r.familiar}; available platforms: ${
            avail.length ? [...new Set(avail)].join(", ") : "none"
          }`,
          r.toString(),
          undefined,
          "PLATFORM_NOT_FOUND",
        );
      }
      validateDigest(pick.digest);
      const child = await this.getManifest(r.withDigest(pick.digest));
      if (child.bytes.byteLength !== pick.size) {
        throw new RegistryError(
          `manifest ${pick.digest} of ${r}: size ${child.bytes.byteLength} does not match index (${pick.size})`,
          r.toString(),
        );
      }
      m = child;
    }
    if (
      m.mediaType === MediaTypes.dockerManifestV1 ||
      m.mediaType === MediaTypes.dockerManifestV1Signed
    ) {
      throw new RegistryError(
        `${r.familiar}: Docker schema 1 manifests are not supported`,
        r.toString(),
      );
    }
    if (!isManifest(m.mediaType)) {
      throw new RegistryError(
        `${r.familiar}: unsupported manifest media type ${JSON.stringify(m.mediaType)}`,
        r.toString(),
      );
    }
    const manifest = JSON.parse(new TextDecoder().decode(m.bytes)) as ImageManifest;
    if (!manifest.config || !Array.isArray(manifest.layers)) {
      throw new RegistryError(
        `${r.familiar}: manifest ${m.digest} has no config or layers`,
        r.toString(),
      );
    }
    await this.#store.putBytes(m.bytes, { digest: m.digest });
    const canonical = r.withDigest(m.digest);
    await this.fetchBlob(canonical.toString(), manifest.config);
    const config = await this.#store.readJSON<ImageConfig>(manifest.config.digest);
    return resolvedImage(
      canonical.toString(),
      m.digest,
      m.mediaType,
      manifest,
      config,
      indexDigest,
    );
  }

  /**
   * Downloads a blob into the store, verified against the descriptor; no-op if present.
   * `tap` sees every downloaded chunk in order as it arrives (the download waits for it), so a
   * layer can be unpacked while it downloads; it is not called when the blob is already stored
   * or another call is downloading it. The blob is verified only when the promise resolves.
   * Calls for the same blob share one download (engine/source/shared_download.ts): a tap that
   * throws fails only its own call, never the others'.
   */
  fetchBlob(ref: string, desc: Descriptor, tap?: BlobTap): Promise<void> {
    validateDigest(desc.digest);
    const r = parseReference(ref);
    return this.#downloads.run(desc.digest, tap, (t) => this.#fetchBlob(r, desc, t));
  }

  async #fetchBlob(r: Reference, desc: Descriptor, tap?: BlobTap): Promise<void> {
    if (await this.#store.has(desc.digest)) return;
    const res = await this.#request(r, "GET", `/v2/${r.path}/blobs/${desc.digest}`, {
      actions: ["pull"],
    });
    if (!res.ok) await this.#fail(res, r, "pull", `blob ${desc.digest}`);
    if (!res.body) {
      throw new RegistryError(`empty response for blob ${desc.digest} of ${r}`, r.toString());
    }
    try {
      const body = res.body;
      await this.#store.ingest(tap ? tapped(body, tap) : body, {
        digest: desc.digest,
        size: desc.size,
      });
    } catch (e) {
      throw new RegistryError(`blob ${desc.digest} of ${r}: ${(e as Error).message}`, r.toString());
    }
  }

  // ---------------------------------------------------------------- push

  /**
   * Pushes blobs (skipping those the registry has) then the manifest, tagged by `ref`'s tag (or
   * put by digest when `ref` has only a digest). Returns the manifest digest.
   */
  async push(ref: string, image: PushImage): Promise<{ digest: string; ref: string }> {
    const r = parseReference(ref);
    const actions = ["pull", "push"];
    const digest = digestOf(image.manifest);
    if (r.digest && r.digest !== digest) {
      throw new RegistryError(
        `push ${r}: the manifest's digest is ${digest}, not ${r.digest}`,
        r.toString(),
      );
    }
    const unique = [...new Map(image.blobs.map((b) => [b.digest, b])).values()];
    const queue = unique.slice();
    const worker = async () => {
      for (let b = queue.shift(); b; b = queue.shift()) await this.#pushBlob(r, b, actions);
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, queue.length) }, worker));

    const res = await this.#request(r, "PUT", `/v2/${r.path}/manifests/${r.tag ?? r.digest}`, {
      actions,
      headers: { "content-type": image.manifestMediaType },
      body: image.manifest,
    });
    if (!res.ok) await this.#fail(res, r, "push", "manifest");
    await res.body?.cancel();
    const sent = res.headers.get("docker-content-digest");
    if (sent && sent.startsWith("sha256:") && sent !== digest) {
      throw new RegistryError(
        `push ${r}: registry stored manifest as ${sent}, expected ${digest}`,
        r.toString(),
      );
    }
    return { digest, ref: r.withDigest(digest).toString() };
  }

  /**
   * Lets pushes use `desc`'s blob without having it: a cross-repository mount from `ref` on the
   * same registry, else a download from `ref` first (engine/cache: lazily imported layers).
   */
  addMountSource(digest: string, ref: string): void {
    this.#mountSources.set(digest, ref);
  }

  /** POST ...?mount=&from=: true when the registry linked the blob (201). */
  async #mount(r: Reference, desc: Descriptor, from: string, actions: string[]): Promise<boolean> {
    const src = parseReference(from);
    if (src.domain !== r.domain) return false;
    const head = await this.#request(r, "HEAD", `/v2/${r.path}/blobs/${desc.digest}`, { actions });
    await head.body?.cancel();
    if (head.ok) return true;
    const q = `mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(src.path)}`;
    const res = await this.#request(r, "POST", `/v2/${r.path}/blobs/uploads/?${q}`, {
      actions,
      headers: { "content-length": "0" },
      body: new Uint8Array(0),
    });
    await res.body?.cancel();
    return res.status === 201;
  }

  async #pushBlob(r: Reference, desc: Descriptor, actions: string[]): Promise<void> {
    validateDigest(desc.digest);
    const from = this.#mountSources.get(desc.digest);
    if (from && !(await this.#store.has(desc.digest))) {
      if (await this.#mount(r, desc, from, actions)) return;
      await this.fetchBlob(from, desc);
    }
    const size = await this.#store.size(desc.digest);
    if (size === undefined) {
      throw new RegistryError(
        `push ${r}: blob ${desc.digest} is not in the content store`,
        r.toString(),
      );
    }
    if (size !== desc.size) {
      throw new RegistryError(
        `push ${r}: blob ${desc.digest} has ${size} bytes in the store but the descriptor says ${desc.size}`,
        r.toString(),
      );
    }
    const head = await this.#request(r, "HEAD", `/v2/${r.path}/blobs/${desc.digest}`, { actions });
    await head.body?.cancel();
    if (head.ok) return;
    if (head.status !== 404 && head.status !== 401 && head.status !== 403) {
      // Unexpected answer: fall through and upload anyway.
    }
    const start = await this.#request(r, "POST", `/v2/${r.path}/blobs/uploads/`, {
      actions,
      headers: { "content-length": "0" },
      body: new Uint8Array(0),
    });
    if (start.status !== 202) await this.#fail(start, r, "push", `blob upload ${desc.digest}`);
    await start.body?.cancel();
    let location = this.#location(start, r);
    const path = this.#store.path(desc.digest);

    if (this.#chunkSize && size > 0) {
      const fh = await open(path, "r");
      try {
        let off = 0;
        const buf = new Uint8Array(Math.min(this.#chunkSize, size));
        while (off < size) {
          const want = Math.min(buf.byteLength, size - off);
          let got = 0;
          while (got < want) {
            const { bytesRead } = await fh.read(buf, got, want - got, off + got);
            if (bytesRead === 0) throw new Error(`blob ${desc.digest} shrank while uploading`);
            got += bytesRead;
          }
          const res = await this.#request(r, "PATCH", location, {
            actions,
            headers: {
              "content-type": "application/octet-stream",
              "content-range": `${off}-${off + want - 1}`,
              "content-length": String(want),
            },
            body: buf.subarray(0, want),
          });
          if (res.status !== 202) await this.#fail(res, r, "push", `blob chunk ${desc.digest}`);
          await res.body?.cancel();
          location = this.#location(res, r);
          off += want;
        }
      } finally {
        await fh.close();
      }
      const u = new URL(location);
      u.searchParams.set("digest", desc.digest);
      const fin = await this.#request(r, "PUT", u.toString(), {
        actions,
        headers: { "content-length": "0" },
        body: new Uint8Array(0),
      });
      if (fin.status !== 201 && !fin.ok) await this.#fail(fin, r, "push", `blob ${desc.digest}`);
      await fin.body?.cancel();
      return;
    }

    const u = new URL(location);
    u.searchParams.set("digest", desc.digest);
    const res = await this.#request(r, "PUT", u.toString(), {
      actions,
      headers: { "content-type": "application/octet-stream" },
      body: () => fileStream(path, size),
    });
    if (res.status !== 201 && !res.ok) await this.#fail(res, r, "push", `blob ${desc.digest}`);
    await res.body?.cancel();
  }

  #location(res: Response, r: Reference): string {
    const loc = res.headers.get("location");
    if (!loc) throw new RegistryError(`push ${r}: registry sent no upload Location`, r.toString());
    return new URL(loc, this.baseUrl(r.domain) + "/").toString();
  }
}

/** A web ReadableStream over a file, read in 1 MiB pieces (never the whole file). */
function fileStream(path: string, size: number): ReadableStream<Uint8Array> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  let off = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        fh ??= await open(path, "r");
        if (off >= size) {
          await fh.close();
          fh = undefined;
          controller.close();
          return;
        }
        const buf = new Uint8Array(Math.min(READ_CHUNK, size - off));
        const { bytesRead } = await fh.read(buf, 0, buf.byteLength, off);
        if (bytesRead === 0) throw new Error(`${path} shrank while uploading`);
        off += bytesRead;
        controller.enqueue(buf.subarray(0, bytesRead));
      } catch (e) {
        await fh?.close().catch(() => {});
        fh = undefined;
        controller.error(e);
      }
    },
    async cancel() {
      await fh?.close().catch(() => {});
      fh = undefined;
    },
  });
}

/** Marks an error about a request that got no HTTP answer (refused, reset, DNS, TLS). */
function unreachable(e: RegistryError): RegistryError {
  e.unreachable = true;
  return e;
}

function causeOf(e: unknown): string {
  const err = e as Error & { cause?: { message?: string; code?: string } };
  const c = err.cause;
  return c ? `${err.message} (${c.code ?? c.message ?? String(c)})` : String(err.message ?? e);
}
