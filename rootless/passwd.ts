/**
 * Parsers for /etc/passwd and /etc/group text, shared by the sandbox (USER of a RUN) and the
 * file ops (--chown by name). Blank and comment lines are skipped; bad ids read as 0, as runc does.
 */
export type PasswdEntry = { name: string; uid: number; gid: number; home: string; shell: string };
export type GroupEntry = { name: string; gid: number; members: string[] };

function toId(s: string | undefined): number {
  const n = Number.parseInt(s ?? "", 10);
  return Number.isFinite(n) && n >= 0 ? n : 0;
}

/** Parse passwd text (name:password:uid:gid:gecos:home:shell). Blank lines are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const f = line.split(":");
    out.push({ name: f[0], uid: toId(f[2]), gid: toId(f[3]), home: f[5] ?? "", shell: f[6] ?? "" });
  }
  return out;
}

/** Parse group text (name:password:gid:member,member). Blank lines are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const f = line.split(":");
    const members = (f[3] ?? "").split(",").map((m) => m.trim()).filter((m) => m !== "");
    out.push({ name: f[0], gid: toId(f[2]), members });
  }
  return out;
}
