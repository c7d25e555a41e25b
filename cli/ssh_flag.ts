/**
 * `--ssh default|ID[=SOCKET|KEYFILE[,KEYFILE…]]`, as buildx takes it: an agent socket to forward
 * (`default` alone means $SSH_AUTH_SOCK), or private key files that tsk reads into memory and
 * serves from its own agent for `RUN --mount=type=ssh` steps (no key bytes are written anywhere).
 */
import { promises as fsp } from "node:fs";
import path from "node:path";
import type { SshSource } from "../engine/ssh/agent.ts";
import { parsePrivateKey } from "../engine/ssh/keys.ts";
import { UsageError } from "./output_flag.ts";

export const SSH_OPTIONS = {
  ssh: { type: "string", multiple: true, default: [] as string[] },
} as const;

export const SSH_HELP =
  `      --ssh ID[=SOCKET|KEY,…]  SSH agent socket or keys for RUN --mount=type=ssh ("default" = $SSH_AUTH_SOCK); repeatable
`;

export async function parseSshFlags(
  list: string[],
  env: Record<string, string | undefined> = process.env,
): Promise<Map<string, SshSource>> {
  const out = new Map<string, SshSource>();
  for (const item of list) {
    const eq = item.indexOf("=");
    const id = eq < 0 ? item : item.slice(0, eq);
    if (!/^[A-Za-z0-9_.-]+$/.test(id)) {
      throw new UsageError(`invalid --ssh ${JSON.stringify(item)}: expected ID[=SOCKET|KEYFILE,…]`);
    }
    if (out.has(id)) throw new UsageError(`--ssh ${id} is given twice`);
    let paths = eq < 0 ? [] : item.slice(eq + 1).split(",").filter(Boolean);
    if (paths.length === 0) {
      const sock = env.SSH_AUTH_SOCK;
      if (!sock) {
        throw new UsageError(
          `--ssh ${id}: SSH_AUTH_SOCK is not set (start ssh-agent, or give a socket or key files)`,
        );
      }
      paths = [sock];
    }
    paths = paths.map((p) => path.resolve(p));
    const stats = await Promise.all(paths.map((p) => fsp.stat(p).catch(() => undefined)));
    const missing = paths.find((_, i) => !stats[i]);
    if (missing) throw new UsageError(`--ssh ${id}: ${missing}: no such file or socket`);
    if (stats.some((s) => s!.isSocket())) {
      if (paths.length !== 1) {
        throw new UsageError(`--ssh ${id}: give one agent socket, or key files, not both`);
      }
      out.set(id, { socket: paths[0] });
      continue;
    }
    const keys = [];
    for (const p of paths) {
      try {
        keys.push(parsePrivateKey(await fsp.readFile(p), p));
      } catch (e) {
        throw new UsageError(`--ssh ${id}: ${(e as Error).message}`);
      }
    }
    out.set(id, { keys });
  }
  return out;
}
