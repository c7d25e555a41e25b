/**
 * Registry credentials from the Docker CLI config (`$DOCKER_CONFIG/config.json`, else
 * `~/.docker/config.json`): `auths[host].auth` (base64 user:pass), `username`/`password`,
 * `identitytoken`, and credential helpers (`credHelpers[host]`, else `credsStore`) run as
 * `docker-credential-<name> get`. Docker Hub is looked up under its aliases
 * (`https://index.docker.io/v1/`, `index.docker.io`, `registry-1.docker.io`, `docker.io`).
 */

import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import process from "node:process";

export type Credentials = {
  username?: string;
  password?: string;
  /** OAuth2 refresh token (Docker `identitytoken`), exchanged at the token endpoint. */
  identityToken?: string;
  /** A ready bearer token for the registry itself (`registrytoken`). */
  registryToken?: string;
};

export type CredentialOptions = {
  /** Directory holding config.json; default `$DOCKER_CONFIG` or `~/.docker`. */
  configDir?: string;
  /** Environment used for `DOCKER_CONFIG`, `HOME` and the helpers' `PATH`; default process.env. */
  env?: Record<string, string | undefined>;
};

type AuthEntry = {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
};

type DockerConfig = {
  auths?: Record<string, AuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
};

const DOCKER_HUB_ALIASES = [
  "docker.io",
  "index.docker.io",
  "registry-1.docker.io",
  "registry.hub.docker.com",
];
/** The key Docker uses for Docker Hub in config.json and for credential helpers. */
export const DOCKER_HUB_SERVER = "https://index.docker.io/v1/";

/** The config directory in effect. */
export function dockerConfigDir(opts: CredentialOptions = {}): string {
  const env = opts.env ?? process.env;
  if (opts.configDir) return opts.configDir;
  if (env.DOCKER_CONFIG) return env.DOCKER_CONFIG;
  return join(env.HOME || homedir(), ".docker");
}

/** Reduces a config.json key (`https://host:5000/v1/`, `host:5000`) to `host:5000`. */
export function normalizeAuthKey(key: string): string {
  let k = key.trim();
  k = k.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  const slash = k.indexOf("/");
  if (slash >= 0) k = k.slice(0, slash);
  k = k.toLowerCase();
  return DOCKER_HUB_ALIASES.includes(k) ? "docker.io" : k;
}

async function readConfig(dir: string): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, "config.json"), "utf8");
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return undefined;
    throw e;
  }
  try {
    return JSON.parse(text) as DockerConfig;
  } catch (e) {
    throw new Error(`cannot parse ${join(dir, "config.json")}: ${(e as Error).message}`);
  }
}

function fromEntry(e: AuthEntry, where: string): Credentials | undefined {
  const c: Credentials = {};
  if (e.auth) {
    const decoded = atobUtf8(e.auth);
    const i = decoded.indexOf(":");
    if (i < 0) {
      throw new Error(`invalid "auth" for ${where} in docker config: not base64 of user:password`);
    }
    c.username = decoded.slice(0, i);
    c.password = decoded.slice(i + 1);
  }
  if (e.username) c.username = e.username;
  if (e.password) c.password = e.password;
  if (e.identitytoken) c.identityToken = e.identitytoken;
  if (e.registrytoken) c.registryToken = e.registrytoken;
  return Object.keys(c).length ? c : undefined;
}

function atobUtf8(b64: string): string {
  const bin = atob(b64.replace(/\s/g, ""));
  return new TextDecoder().decode(Uint8Array.from(bin, (ch) => ch.charCodeAt(0)));
}

/** Base64 of `user:pass` for a Basic Authorization header. */
export function basicAuth(username: string, password: string): string {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** Runs `docker-credential-<helper> get` for `server`. Undefined when it has no entry. */
export function runCredentialHelper(
  helper: string,
  server: string,
  env: Record<string, string | undefined> = process.env,
): Promise<Credentials | undefined> {
  const bin = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = spawn(bin, ["get"], {
        env: env as Record<string, string>,
        stdio: ["pipe", "pipe", "pipe"],
      });
    } catch (e) {
      reject(new Error(`credential helper ${bin}: ${(e as Error).message}`));
      return;
    }
    const out: Uint8Array[] = [];
    const err: Uint8Array[] = [];
    child.stdout.on("data", (d: Uint8Array) => out.push(d));
    child.stderr.on("data", (d: Uint8Array) => err.push(d));
    child.on("error", (e: Error & { code?: string }) => {
      reject(
        new Error(
          e.code === "ENOENT"
            ? `credential helper ${bin} not found in PATH (configured in docker config.json)`
            : `credential helper ${bin}: ${e.message}`,
        ),
      );
    });
    child.on("close", (code: number | null) => {
      const stdout = new TextDecoder().decode(concat(out)).trim();
      const stderr = new TextDecoder().decode(concat(err)).trim();
      if (code !== 0) {
        const msg = stdout || stderr;
        if (/credentials not found/i.test(msg)) return resolve(undefined);
        return reject(new Error(`credential helper ${bin} get failed (exit ${code}): ${msg}`));
      }
      try {
        const j = JSON.parse(stdout) as { Username?: string; Secret?: string };
        if (!j.Secret && !j.Username) return resolve(undefined);
        if (j.Username === "<token>") return resolve({ identityToken: j.Secret });
        resolve({ username: j.Username, password: j.Secret });
      } catch {
        reject(new Error(`credential helper ${bin} printed invalid JSON`));
      }
    });
    child.stdin.on("error", () => {});
    child.stdin.end(server);
  });
}

function concat(parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((a, p) => a + p.byteLength, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/**
 * Credentials for a registry host (`docker.io`, `localhost:5000`, ...), or undefined.
 * Order: `credHelpers[host]`, `credsStore`, then the `auths` entry.
 */
export async function getCredentials(
  host: string,
  opts: CredentialOptions = {},
): Promise<Credentials | undefined> {
  const env = opts.env ?? process.env;
  const cfg = await readConfig(dockerConfigDir(opts));
  if (!cfg) return undefined;
  const want = normalizeAuthKey(host);
  const isHub = want === "docker.io";
  const serverArg = isHub ? DOCKER_HUB_SERVER : host;

  const helper = Object.entries(cfg.credHelpers ?? {}).find(([k]) => normalizeAuthKey(k) === want)
    ?.[1];
  if (helper) {
    const c = await runCredentialHelper(helper, serverArg, env);
    if (c) return c;
  } else if (cfg.credsStore) {
    const c = await runCredentialHelper(cfg.credsStore, serverArg, env);
    if (c) return c;
  }

  const auths = cfg.auths ?? {};
  // Prefer an exact key, then the canonical Hub key, then any alias.
  const keys = Object.keys(auths);
  const exact = keys.find((k) => k === host) ??
    (isHub ? keys.find((k) => k === DOCKER_HUB_SERVER) : undefined) ??
    keys.find((k) => normalizeAuthKey(k) === want);
  if (exact === undefined) return undefined;
  return fromEntry(auths[exact], exact);
}
