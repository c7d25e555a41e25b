/**
 * Pushing an image that dockerd's BuildKit exported with `moby` (dockerd 20.10's BuildKit has no
 * `image` exporter): `POST /images/{name}/push?tag=T` on the Engine API, as buildx's docker
 * driver does, with `X-Registry-Auth` (URL-alphabet base64 JSON of the credentials for that registry, from
 * ~/.docker/config.json) and dockerd's JSON progress stream rendered as tsk progress. An error
 * in the stream fails the push with the registry's message.
 */
import http from "node:http";
import { DEFAULT_DOMAIN, parseReference } from "../source/reference.ts";
import { type Credentials, DOCKER_HUB_SERVER } from "../source/auth.ts";
import type { Progress } from "../solver/progress.ts";

/** The credentials a push sends: auth.ts's (a registry token is not passed to dockerd). */
export type PushCredentials = Pick<Credentials, "username" | "password" | "identityToken">;

/** The X-Registry-Auth header value the Docker CLI sends (`{}` without credentials). */
export function registryAuthHeader(server: string, c: PushCredentials | undefined): string {
  const body: Record<string, string> = {};
  if (c?.identityToken) body.identitytoken = c.identityToken;
  else if (c?.username !== undefined) {
    body.username = c.username;
    body.password = c.password ?? "";
  }
  if (Object.keys(body).length) body.serveraddress = server;
  // Go's base64.URLEncoding: the URL alphabet with padding (dockerd rejects it unpadded).
  return Buffer.from(JSON.stringify(body)).toString("base64").replace(/\+/g, "-").replace(/\//g, "_");
}

type PushMessage = {
  status?: string;
  id?: string;
  progress?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { Tag?: string; Digest?: string; Size?: number };
};

export class PushError extends Error {}

/**
 * Pushes `name` (a tagged reference) from dockerd at `socket`; returns the manifest digest the
 * registry took.
 */
export function dockerPush(
  socket: string,
  name: string,
  credentials: (host: string) => Promise<PushCredentials | undefined>,
  progress: Progress,
): Promise<string> {
  const ref = parseReference(name);
  if (ref.digest) throw new PushError(`cannot push ${name}: a digest reference names no tag`);
  const repo = ref.name;
  const tag = ref.tag ?? "latest";
  const server = ref.domain === DEFAULT_DOMAIN ? DOCKER_HUB_SERVER : ref.domain;
  return credentials(ref.domain).then((c) =>
    new Promise<string>((resolve, reject) => {
      const vp = progress.start(`pushing ${ref.toString()} with docker`);
      const fail = (err: Error) => {
        vp.error(err);
        reject(err);
      };
      const req = http.request({
        socketPath: socket,
        method: "POST",
        path: `/images/${encodeURIComponent(repo)}/push?tag=${encodeURIComponent(tag)}`,
        headers: { "X-Registry-Auth": registryAuthHeader(server, c) },
      }, (res) => {
        let buf = "";
        let digest = "";
        let error: string | undefined;
        const last = new Map<string, string>();
        const line = (l: string) => {
          if (!l.trim()) return;
          let m: PushMessage;
          try {
            m = JSON.parse(l);
          } catch {
            return;
          }
          if (m.error || m.errorDetail?.message) {
            error ??= m.errorDetail?.message ?? m.error;
            return;
          }
          if (m.aux?.Digest) digest = m.aux.Digest;
          if (!m.status) return;
          // One line per layer state change (dockerd repeats "Pushing" with byte counts).
          const text = m.id ? `${m.id}: ${m.status}` : m.status;
          if (m.id && last.get(m.id) === m.status) return;
          if (m.id) last.set(m.id, m.status);
          vp.log(1, `${text}\n`);
        };
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          buf += d;
          let i;
          while ((i = buf.indexOf("\n")) >= 0) {
            line(buf.slice(0, i));
            buf = buf.slice(i + 1);
          }
        });
        res.on("error", fail);
        res.on("end", () => {
          line(buf);
          if (res.statusCode !== 200) {
            let msg = buf;
            try {
              msg = JSON.parse(buf).message ?? buf;
            } catch { /* as sent */ }
            return fail(new PushError(`pushing ${ref.toString()}: dockerd answered ${res.statusCode}: ${msg.trim()}`));
          }
          if (error) return fail(new PushError(`pushing ${ref.toString()}: ${error}`));
          if (digest) vp.status(`pushed ${ref.toString()}@${digest}`);
          vp.done();
          resolve(digest);
        });
      });
      req.on("error", (err) => fail(new PushError(`pushing ${ref.toString()}: ${err.message}`)));
      req.end();
    })
  );
}
