/**
 * Source ops (client/llb `SourceOp`): docker images, local directories, git repositories, HTTP files
 * and OCI layouts, with the attrs and capability IDs client/llb writes for each. Only
 * `docker-image://` and `oci-layout://` sources keep a platform.
 */
import type { SourceOp } from "../../proto/ops.ts";
import { Attr, Caps } from "./caps.ts";
import { goJSONStringArray } from "./gojson.ts";
import {
  cachedMarshal,
  Constraints,
  marshalConstraints,
  type MarshalContext,
  type MarshalledOp,
  marshalledOp,
  type OpNode,
  type OpOptions,
  Output,
  posixPathJoin,
  State,
} from "./state.ts";

export { scratch } from "./state.ts";

/** The source vertex. */
export class SourceNode implements OpNode {
  readonly id: string;
  readonly attrs: Record<string, string>;
  readonly constraints: Constraints;
  readonly output: Output;
  constructor(id: string, attrs: Record<string, string>, c: Constraints) {
    if (id === "") throw new Error("source identifier can't be empty");
    this.id = id;
    this.attrs = attrs;
    this.constraints = c;
    this.output = new Output(this, { platform: c.platform });
  }
  inputs(): Output[] {
    return [];
  }
  marshal(ctx: MarshalContext): MarshalledOp {
    return cachedMarshal(ctx, this, () => {
      const attrs = { ...this.attrs };
      if (this.id.startsWith("local://") && !(Attr.LocalSessionID in attrs)) {
        attrs[Attr.LocalUniqueID] = this.constraints.localUniqueID || ctx.localUniqueID;
        this.constraints.addCap(Caps.SourceLocalUnique);
      }
      const { op, metadata } = marshalConstraints(ctx, this.constraints);
      const source: SourceOp = { identifier: this.id };
      if (Object.keys(attrs).length) source.attrs = attrs;
      op.source = source;
      if (!platformSpecificSource(this.id)) delete op.platform;
      return marshalledOp(op, metadata, this.constraints);
    });
  }
}

function platformSpecificSource(id: string): boolean {
  return id.startsWith("docker-image://") || id.startsWith("oci-layout://");
}

/** A generic source by identifier (client/llb NewSource + NewState). */
export function source(
  id: string,
  attrs: Record<string, string> = {},
  opts: OpOptions & { caps?: string[] } = {},
): State {
  const c = Constraints.from(opts);
  for (const cap of opts.caps ?? []) c.addCap(cap);
  return State.fromOutput(new SourceNode(id, attrs, c).output);
}

// ---- image references (distribution/reference ParseNormalizedNamed + TagNameOnly) ----

const DOMAIN_RE =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?$|^\[[a-fA-F0-9:]+\](?::[0-9]+)?$/;
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/**
 * Normalises an image reference like Docker does: `busybox` → `docker.io/library/busybox:latest`,
 * `foo/bar@sha256:…` → `docker.io/foo/bar@sha256:…`. Throws on invalid references.
 */
export function normalizeImageRef(ref: string): string {
  let rest = ref;
  let digest = "";
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) throw new Error(`invalid reference format: ${ref}`);
  }
  let tag = "";
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.indexOf(":", lastSlash + 1);
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw new Error(`invalid reference format: ${ref}`);
  }
  if (rest === "") throw new Error(`invalid reference format: ${ref}`);
  let domain = "docker.io";
  let remainder = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (
      first.includes(".") || first.includes(":") || first === "localhost" ||
      first.toLowerCase() !== first
    ) {
      domain = first;
      remainder = rest.slice(slash + 1);
    }
  }
  if (domain === "index.docker.io") domain = "docker.io";
  if (!DOMAIN_RE.test(domain)) throw new Error(`invalid reference format: ${ref}`);
  if (remainder.toLowerCase() !== remainder) {
    throw new Error(`invalid reference format: repository name (${remainder}) must be lowercase`);
  }
  if (domain === "docker.io" && !remainder.includes("/")) remainder = "library/" + remainder;
  if (!remainder.split("/").every((p) => PATH_COMPONENT_RE.test(p))) {
    throw new Error(`invalid reference format: ${ref}`);
  }
  if (domain.length + 1 + remainder.length > 255) {
    throw new Error(`repository name must not be more than 255 characters`);
  }
  let out = `${domain}/${remainder}`;
  if (tag) out += ":" + tag;
  if (digest) out += "@" + digest;
  if (!tag && !digest) out += ":latest";
  return out;
}

export type ImageOptions = OpOptions & {
  /** "default" (omitted), "pull" (force pull) or "local" (prefer local). */
  resolveMode?: "default" | "pull" | "local";
  layerLimit?: number;
  /** `image.recordtype`, e.g. "internal" (client/llb MarkImageInternal). */
  recordType?: string;
};

/** `docker-image://<normalised ref>`; the op keeps `opts.platform` (else the marshal default). */
export function image(ref: string, opts: ImageOptions = {}): State {
  const name = normalizeImageRef(ref);
  const c = Constraints.from(opts);
  c.addCap(Caps.SourceImage);
  const attrs: Record<string, string> = {};
  if (opts.resolveMode && opts.resolveMode !== "default") {
    attrs[Attr.ImageResolveMode] = opts.resolveMode;
    if (opts.resolveMode === "pull") c.addCap(Caps.SourceImageResolveMode);
  }
  if (opts.recordType) attrs[Attr.ImageRecordType] = opts.recordType;
  if (opts.layerLimit !== undefined) {
    attrs[Attr.ImageLayerLimit] = String(Math.trunc(opts.layerLimit));
    c.addCap(Caps.SourceImageLayerLimit);
  }
  return State.fromOutput(new SourceNode("docker-image://" + name, attrs, c).output);
}

export type LocalOptions = OpOptions & {
  includePatterns?: string[];
  excludePatterns?: string[];
  followPaths?: string[];
  sharedKeyHint?: string;
  sessionID?: string;
  differ?: { type: "none" | "metadata"; required?: boolean };
};

/** `local://<name>`: a directory sent by the client (build context, Dockerfile dir). */
export function local(name: string, opts: LocalOptions = {}): State {
  const c = Constraints.from(opts);
  const attrs: Record<string, string> = {};
  if (opts.sessionID) {
    attrs[Attr.LocalSessionID] = opts.sessionID;
    c.addCap(Caps.SourceLocalSessionID);
  }
  if (opts.includePatterns?.length) {
    attrs[Attr.IncludePatterns] = goJSONStringArray(opts.includePatterns);
    c.addCap(Caps.SourceLocalIncludePatterns);
  }
  if (opts.followPaths?.length) {
    attrs[Attr.FollowPaths] = goJSONStringArray(opts.followPaths);
    c.addCap(Caps.SourceLocalFollowPaths);
  }
  if (opts.excludePatterns?.length) {
    attrs[Attr.ExcludePatterns] = goJSONStringArray(opts.excludePatterns);
    c.addCap(Caps.SourceLocalExcludePatterns);
  }
  if (opts.sharedKeyHint) {
    attrs[Attr.SharedKeyHint] = opts.sharedKeyHint;
    c.addCap(Caps.SourceLocalSharedKeyHint);
  }
  if (opts.differ?.type) {
    attrs[Attr.LocalDiffer] = opts.differ.type;
    if (opts.differ.required) c.addCap(Caps.SourceLocalDiffer);
  }
  c.addCap(Caps.SourceLocal);
  return State.fromOutput(new SourceNode("local://" + name, attrs, c).output);
}

export type GitOptions = OpOptions & {
  keepGitDir?: boolean;
  /** Secret names for HTTP auth (defaults GIT_AUTH_TOKEN / GIT_AUTH_HEADER). */
  authTokenSecret?: string;
  authHeaderSecret?: string;
  /** known_hosts content for ssh remotes. */
  knownSSHHosts?: string;
  /** SSH agent id to mount for ssh remotes (default "default"). */
  mountSSHSock?: string;
};

type GitURL = { scheme: string; host: string; path: string; remote: string };

/** A subset of BuildKit's gitutil.ParseURL: scheme URLs and scp-like `user@host:path`. */
function parseGitURL(url: string): GitURL | undefined {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(url);
  if (m) {
    const scheme = m[1].toLowerCase();
    if (!["http", "https", "git", "ssh"].includes(scheme)) return undefined;
    let rest = m[2];
    const hash = rest.indexOf("#");
    if (hash >= 0) rest = rest.slice(0, hash);
    const slash = rest.indexOf("/");
    let hostPart = slash >= 0 ? rest.slice(0, slash) : rest;
    const path = slash >= 0 ? rest.slice(slash) : "";
    const atIdx = hostPart.lastIndexOf("@");
    if (atIdx >= 0) hostPart = hostPart.slice(atIdx + 1);
    const remote = hash >= 0 ? url.slice(0, url.indexOf("#")) : url;
    return { scheme, host: hostPart, path, remote };
  }
  const scp = /^(?:([^@/:]+)@)?([^@/:]+):(.+)$/.exec(url);
  if (scp && scp[1]) {
    let path = scp[3];
    const hash = path.indexOf("#");
    if (hash >= 0) path = path.slice(0, hash);
    const remote = hash >= 0 ? url.slice(0, url.indexOf("#")) : url;
    return { scheme: "ssh", host: scp[2], path, remote };
  }
  return undefined;
}

/** `git://<host>/<path>[#ref]` with `git.fullurl` and auth secret attrs (client/llb Git). */
export function git(url: string, ref = "", opts: GitOptions = {}): State {
  let remote = parseGitURL(url);
  if (!remote && !/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    url = "https://" + url;
    remote = parseGitURL(url);
  }
  if (remote) url = remote.remote;
  let id: string;
  if (!remote) id = url;
  else {
    id = remote.host + posixPathJoin("/", remote.path);
    if (ref !== "") id += "#" + ref;
  }
  const c = Constraints.from(opts);
  const attrs: Record<string, string> = {};
  if (opts.keepGitDir) {
    attrs[Attr.KeepGitDir] = "true";
    c.addCap(Caps.SourceGitKeepDir);
  }
  if (url !== "") {
    attrs[Attr.FullRemoteURL] = url;
    c.addCap(Caps.SourceGitFullURL);
  }
  const token = opts.authTokenSecret ?? "GIT_AUTH_TOKEN";
  const header = opts.authHeaderSecret ?? "GIT_AUTH_HEADER";
  if (token) {
    attrs[Attr.AuthTokenSecret] = token;
    if (opts.authTokenSecret !== undefined) c.addCap(Caps.SourceGitHTTPAuth);
  }
  if (header) {
    attrs[Attr.AuthHeaderSecret] = header;
    if (opts.authHeaderSecret !== undefined) c.addCap(Caps.SourceGitHTTPAuth);
  }
  if (remote?.scheme === "ssh") {
    if (opts.knownSSHHosts) attrs[Attr.KnownSSHHosts] = opts.knownSSHHosts;
    c.addCap(Caps.SourceGitKnownSSHHosts);
    attrs[Attr.MountSSHSock] = opts.mountSSHSock || "default";
    c.addCap(Caps.SourceGitMountSSHSock);
  }
  c.addCap(Caps.SourceGit);
  return State.fromOutput(new SourceNode("git://" + id, attrs, c).output);
}

export type HTTPOptions = OpOptions & {
  /** Expected content digest (`sha256:…`). */
  checksum?: string;
  filename?: string;
  /** File permission bits (e.g. 0o644). */
  perm?: number;
  uid?: number;
  gid?: number;
};

/** An `http://` / `https://` file source. */
export function http(url: string, opts: HTTPOptions = {}): State {
  const c = Constraints.from(opts);
  const attrs: Record<string, string> = {};
  if (opts.checksum) {
    attrs[Attr.HTTPChecksum] = opts.checksum;
    c.addCap(Caps.SourceHTTPChecksum);
  }
  if (opts.filename) attrs[Attr.HTTPFilename] = opts.filename;
  if (opts.perm) {
    attrs[Attr.HTTPPerm] = "0" + (opts.perm & 0o777).toString(8);
    c.addCap(Caps.SourceHTTPPerm);
  }
  if (opts.uid) {
    attrs[Attr.HTTPUID] = String(opts.uid);
    c.addCap(Caps.SourceHTTPUIDGID);
  }
  if (opts.gid) {
    attrs[Attr.HTTPGID] = String(opts.gid);
    c.addCap(Caps.SourceHTTPUIDGID);
  }
  c.addCap(Caps.SourceHTTP);
  return State.fromOutput(new SourceNode(url, attrs, c).output);
}

export type OCILayoutOptions = OpOptions & {
  sessionID?: string;
  storeID?: string;
  layerLimit?: number;
};

/** `oci-layout://<ref>`: an image from a client-side OCI layout store. */
export function ociLayout(ref: string, opts: OCILayoutOptions = {}): State {
  const c = Constraints.from(opts);
  const attrs: Record<string, string> = {};
  if (opts.sessionID) attrs[Attr.OCILayoutSessionID] = opts.sessionID;
  if (opts.storeID) attrs[Attr.OCILayoutStoreID] = opts.storeID;
  if (opts.layerLimit !== undefined) {
    attrs[Attr.OCILayoutLayerLimit] = String(Math.trunc(opts.layerLimit));
  }
  c.addCap(Caps.SourceOCILayout);
  return State.fromOutput(new SourceNode("oci-layout://" + ref, attrs, c).output);
}
