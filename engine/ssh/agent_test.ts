import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parsePrivateKey } from "./keys.ts";
import { removeDeadSocketDirs, startAgent } from "./agent.ts";

const hasTools = spawnSync("ssh-keygen", ["-?"]).error === undefined &&
  spawnSync("ssh-add", ["-?"]).error === undefined;

/** Runs a command asynchronously (the agent answers on this process's event loop). */
function run(cmd: string, args: string[], env: Record<string, string>) {
  return new Promise<{ code: number; out: string; err: string }>((resolve) => {
    const c = spawn(cmd, args, { env: { ...process.env, ...env } });
    let out = "", err = "";
    c.stdout.on("data", (d) => (out += d));
    c.stderr.on("data", (d) => (err += d));
    c.on("close", (code) => resolve({ code: code ?? 1, out, err }));
  });
}

test("keys from memory: ssh-add lists them and ssh-keygen signs through the agent", {
  skip: hasTools ? false : "ssh-keygen/ssh-add not installed",
}, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "tsk-agent-"));
  try {
    const gen = (type: string, name: string, extra: string[] = []) => {
      const r = spawnSync("ssh-keygen", [
        "-q",
        "-t",
        type,
        "-N",
        "",
        "-C",
        name,
        ...extra,
        "-f",
        path.join(dir, name),
      ]);
      assert.equal(r.status, 0, r.stderr?.toString());
      return path.join(dir, name);
    };
    const files = [
      gen("ed25519", "ed"),
      gen("rsa", "rsa", ["-b", "2048"]),
      gen("rsa", "pem", ["-b", "2048", "-m", "PEM"]),
    ];
    const keys = files.map((f) => parsePrivateKey(readFileSync(f), f));
    const agent = await startAgent({ keys }, {
      uid: process.getuid!(),
      gid: process.getgid!(),
      mode: 0o600,
    });
    try {
      assert.equal(statSync(agent.path).mode & 0o777, 0o600);
      const env = { SSH_AUTH_SOCK: agent.path };
      const listed = await run("ssh-add", ["-L"], env);
      assert.equal(listed.code, 0, listed.err);
      const want = files.map((f) =>
        readFileSync(f + ".pub", "utf8").split(" ").slice(0, 2).join(" ")
      );
      assert.deepEqual(
        listed.out.trim().split("\n").map((l) => l.split(" ").slice(0, 2).join(" ")),
        want,
      );
      // Signatures the agent makes verify against the public keys (RSA with SHA-512 here).
      writeFileSync(path.join(dir, "msg"), "hello");
      for (const f of files) {
        const s = await run("ssh-keygen", [
          "-Y",
          "sign",
          "-f",
          f + ".pub",
          "-n",
          "file",
          path.join(dir, "msg"),
        ], env);
        assert.equal(s.code, 0, s.err);
        const sig = path.join(dir, "msg.sig");
        const v = spawnSync("ssh-keygen", ["-Y", "check-novalidate", "-n", "file", "-s", sig], {
          input: "hello",
        });
        assert.equal(v.status, 0, v.stderr.toString());
        rmSync(sig);
      }
    } finally {
      await agent.close();
    }
    assert.ok(!existsSync(agent.path), "the socket is removed");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("socket dirs of dead tsk processes are removed, live ones kept", () => {
  const base = mkdtempSync(path.join(tmpdir(), "tsk-agent-base-"));
  try {
    const dead = spawnSync("true").pid!; // exited already
    mkdirSync(path.join(base, `tsk-ssh-${dead}-abc`));
    mkdirSync(path.join(base, `tsk-ssh-${process.pid}-def`));
    mkdirSync(path.join(base, "unrelated"));
    removeDeadSocketDirs(base);
    assert.deepEqual(readdirSync(base).sort(), [`tsk-ssh-${process.pid}-def`, "unrelated"]);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test("bad key files are clear errors", () => {
  assert.throws(() => parsePrivateKey(Buffer.from("hello"), "k"), /k: not an SSH private key/);
  const enc = "-----BEGIN OPENSSH PRIVATE KEY-----\n" +
    Buffer.concat([
      Buffer.from("openssh-key-v1\0"),
      Buffer.from([0, 0, 0, 10]),
      Buffer.from("aes256-ctr"),
    ]).toString("base64") + "\n-----END OPENSSH PRIVATE KEY-----\n";
  assert.throws(() => parsePrivateKey(Buffer.from(enc), "k"), /passphrase-protected/);
});
