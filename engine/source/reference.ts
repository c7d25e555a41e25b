/**
 * Docker image references: parsing, validation and normalization (distribution/reference
 * grammar). `busybox` → `docker.io/library/busybox:latest`; `localhost:5000/app:1`;
 * `host/repo@sha256:…`; `name:tag@sha256:…` (the digest wins when resolving).
 */

export const DEFAULT_DOMAIN = "docker.io";
export const DEFAULT_TAG = "latest";
const LEGACY_DOMAIN = "index.docker.io";
const OFFICIAL_PREFIX = "library/";

const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const IPV6 = /^\[[a-fA-F0-9:]+\]$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const NAME_MAX = 255;

/** A parsed, normalized image reference. */
export class Reference {
  /** Registry host (with port), e.g. `docker.io`, `localhost:5000`. */
  readonly domain: string;
  /** Repository path, e.g. `library/busybox`. */
  readonly path: string;
  readonly tag?: string;
  readonly digest?: string;

  constructor(domain: string, path: string, tag?: string, digest?: string) {
    this.domain = domain;
    this.path = path;
    if (tag !== undefined) this.tag = tag;
    if (digest !== undefined) this.digest = digest;
  }

  /** `domain/path`. */
  get name(): string {
    return `${this.domain}/${this.path}`;
  }

  /** Full normalized form: `domain/path[:tag][@digest]`. */
  toString(): string {
    return this.name + (this.tag !== undefined ? `:${this.tag}` : "") +
      (this.digest !== undefined ? `@${this.digest}` : "");
  }

  /** Short Docker-style form: `busybox:latest`, `user/app:1`, `localhost:5000/app:1`. */
  get familiar(): string {
    let n = this.name;
    if (this.domain === DEFAULT_DOMAIN) {
      n =
        this.path.startsWith(OFFICIAL_PREFIX) && this.path.indexOf("/", OFFICIAL_PREFIX.length) < 0
          ? this.path.slice(OFFICIAL_PREFIX.length)
          : this.path;
    }
    return n + (this.tag !== undefined ? `:${this.tag}` : "") +
      (this.digest !== undefined ? `@${this.digest}` : "");
  }

  /** What to ask the registry's manifest endpoint for: the digest if any, else the tag. */
  get reference(): string {
    return this.digest ?? this.tag ?? DEFAULT_TAG;
  }

  /** Same repository, pinned to `digest` (tag dropped): the canonical `name@digest`. */
  withDigest(digest: string): Reference {
    validateDigestString(digest, digest);
    return new Reference(this.domain, this.path, undefined, digest);
  }

  /** Same repository with another tag (digest dropped). */
  withTag(tag: string): Reference {
    if (!TAG.test(tag)) throw new InvalidReferenceError(tag, `invalid tag ${JSON.stringify(tag)}`);
    return new Reference(this.domain, this.path, tag);
  }
}

/** Error for a malformed reference; the message says what is wrong. */
export class InvalidReferenceError extends Error {
  input: string;
  constructor(input: string, reason: string) {
    super(`invalid reference ${JSON.stringify(input)}: ${reason}`);
    this.name = "InvalidInvalidReferenceError";
    this.input = input;
  }
}

function validateDigestString(input: string, digest: string): void {
  if (!DIGEST.test(digest)) {
    throw new InvalidReferenceError(input, `invalid digest ${JSON.stringify(digest)}`);
  }
  const [alg, hex] = digest.split(":");
  const want: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
  if (want[alg] === undefined) {
    throw new InvalidReferenceError(input, `unsupported digest algorithm ${JSON.stringify(alg)}`);
  }
  if (!new RegExp(`^[a-f0-9]{${want[alg]}}$`).test(hex)) {
    throw new InvalidReferenceError(
      input,
      `${alg} digest must be ${want[alg]} lowercase hex characters`,
    );
  }
}

function validDomain(d: string): boolean {
  let host = d;
  const ipv6 = d.startsWith("[");
  if (ipv6) {
    const end = d.indexOf("]");
    if (end < 0) return false;
    host = d.slice(0, end + 1);
    if (!IPV6.test(host)) return false;
    const rest = d.slice(end + 1);
    return rest === "" || /^:[0-9]+$/.test(rest);
  }
  const colon = host.indexOf(":");
  if (colon >= 0) {
    if (!/^[0-9]+$/.test(host.slice(colon + 1))) return false;
    host = host.slice(0, colon);
  }
  return host.split(".").every((c) => DOMAIN_COMPONENT.test(c));
}

/**
 * Parses and normalizes an image reference. No tag and no digest → `:latest`.
 * Throws InvalidReferenceError (message names the problem) on malformed input.
 */
export function parseReference(input: string): Reference {
  if (typeof input !== "string" || input === "") {
    throw new InvalidReferenceError(String(input), "reference is empty");
  }
  if (/\s/.test(input)) throw new InvalidReferenceError(input, "contains whitespace");
  if (/^[a-f0-9]{64}$/.test(input)) {
    throw new InvalidReferenceError(
      input,
      "cannot be a 64-character hexadecimal string (use sha256:<hex> or name@sha256:<hex>)",
    );
  }
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (digest.includes("@")) throw new InvalidReferenceError(input, "more than one '@'");
    validateDigestString(input, digest);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      throw new InvalidReferenceError(
        input,
        `invalid tag ${
          JSON.stringify(tag)
        } (tags are up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-')`,
      );
    }
  }
  if (rest === "") throw new InvalidReferenceError(input, "repository name is empty");

  let domain: string;
  let path: string;
  const slash = rest.indexOf("/");
  const first = slash < 0 ? "" : rest.slice(0, slash);
  if (
    slash < 0 ||
    (!/[.:]/.test(first) && first !== "localhost" && !first.startsWith("[") &&
      first.toLowerCase() === first)
  ) {
    domain = DEFAULT_DOMAIN;
    path = rest;
  } else {
    domain = first;
    path = rest.slice(slash + 1);
    if (!validDomain(domain)) {
      throw new InvalidReferenceError(input, `invalid registry host ${JSON.stringify(domain)}`);
    }
  }
  if (domain === LEGACY_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes("/")) path = OFFICIAL_PREFIX + path;

  if (path === "") throw new InvalidReferenceError(input, "repository name is empty");
  for (const comp of path.split("/")) {
    if (comp === "") {
      throw new InvalidReferenceError(input, "repository name has an empty path component");
    }
    if (/[A-Z]/.test(comp)) {
      throw new InvalidReferenceError(
        input,
        `repository name must be lowercase (got ${JSON.stringify(comp)})`,
      );
    }
    if (!PATH_COMPONENT.test(comp)) {
      throw new InvalidReferenceError(
        input,
        `invalid repository name component ${
          JSON.stringify(comp)
        } (allowed: [a-z0-9] separated by '.', '_', '__' or '-')`,
      );
    }
  }
  if (domain.length + 1 + path.length > NAME_MAX) {
    throw new InvalidReferenceError(input, `repository name is longer than ${NAME_MAX} characters`);
  }
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return new Reference(domain, path, tag, digest);
}

/** The normalized string form of a reference (`busybox` → `docker.io/library/busybox:latest`). */
export function normalizeReference(input: string): string {
  return parseReference(input).toString();
}
