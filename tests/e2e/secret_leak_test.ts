/**
 * Secrets never reach persistent disk or any output (issue 8, issue 15): a RUN that uses a file
 * secret (`--secret id=f,src=PATH`) and an environment secret (`--secret id=e,env=VAR`, as a file
 * and as `env=`) without writing them leaves their values nowhere — not in any blob (layers
 * decompressed), the config, the store directory (SQLite and its WAL included), stderr or the
 * rawjson progress. And a `kill -9` while such a RUN holds the secrets leaves their values nowhere
 * on disk: not in the store, the temp dir or $XDG_RUNTIME_DIR. As root and rootless.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { makeContext, storeDir, TSK, tsk, useEnv } from "./harness.ts";
import type { UnprivilegedUser } from "../fixtures/unpriv_user.ts";

const e = useEnv();

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

/** Whether `data` (or its gunzipped form) holds one of `needles`. */
function holds(data: Buffer, needles: string[]): boolean {
  const texts = [data];
  if (data[0] === 0x1f && data[1] === 0x8b) {
    try {
      texts.push(gunzipSync(data));
    } catch {
      // not a complete gzip stream
    }
  }
  return texts.some((t) => needles.some((x) => t.includes(x)));
}

/** Files under `dir` (recursively) holding one of `needles`, gzip members decompressed. */
function filesHolding(dir: string, needles: string[]): string[] {
  const r = spawnSync("find", [dir, "-type", "f", "-size", "-64M"], {
    encoding: "utf8",
    maxBuffer: 1 << 28,
  });
  return r.stdout.split("\n").filter((p) => p && readable(p, needles));
}

/**
 * Files under `dir` written or changed since `stamp` was (a leak is a file written during the
 * build; the temp dir is too large to read whole) holding one of `needles`, except `except`.
 */
function changedFilesHolding(dir: string, stamp: string, needles: string[], except: string[]) {
  const r = spawnSync(
    "find",
    [
      dir,
      "-xdev",
      "-type",
      "f",
      "-size",
      "-64M",
      "(",
      "-newer",
      stamp,
      "-o",
      "-cnewer",
      stamp,
      ")",
    ],
    { encoding: "utf8", maxBuffer: 1 << 28 },
  );
  return r.stdout.split("\n").filter((p) => p && !except.includes(p) && readable(p, needles));
}

function readable(p: string, needles: string[]): boolean {
  try {
    return holds(readFileSync(p), needles);
  } catch {
    return false; // gone or unreadable (another user's): nothing tsk could have written for us
  }
}

/** A secret file readable by `owner`. */
function secretFile(value: string, owner?: UnprivilegedUser): string {
  const dir = mkdtempSync(path.join(e.work, "secret-"));
  const f = path.join(dir, "value");
  writeFileSync(f, value, { mode: 0o600 });
  if (owner) {
    chownSync(dir, owner.uid, owner.gid);
    chownSync(f, owner.uid, owner.gid);
  }
  return f;
}

for (const mode of ["root", "rootless"] as const) {
  describe(`secrets stay off disk and out of outputs, ${mode}`, () => {
    const as = () => (mode === "rootless" ? e.user : undefined);

    test("a RUN that uses file and env secrets without writing them leaves them nowhere", async () => {
      const fileValue = `file-secret-${randomBytes(12).toString("hex")}`;
      const envValue = `env-secret-${randomBytes(12).toString("hex")}`;
      const src = secretFile(fileValue, as());
      const ctx = makeContext(e, {
        Dockerfile: `FROM ${e.busybox}
RUN --mount=type=secret,id=f --mount=type=secret,id=e,target=/run/e --mount=type=secret,id=e,env=SECRET_E \\
    sha256sum /run/secrets/f | cut -c1-64 > /f.sha && sha256sum /run/e | cut -c1-64 > /e.sha && \\
    printf %s "$SECRET_E" | sha256sum | cut -c1-64 > /env.sha && stat -c '%a %u' /run/secrets/f > /f.stat
`,
      }, as());
      const store = storeDir(e, as());
      const outParent = storeDir(e, as());
      const out = path.join(outParent, "image.tar");
      const r = await tsk([
        "build",
        "--root",
        store,
        "--progress",
        "rawjson",
        "--secret",
        `id=f,src=${src}`,
        "--secret",
        "id=e,env=TSK_TEST_SECRET",
        "-o",
        `type=oci,dest=${out}`,
        ctx,
      ], { as: as(), env: { TSK_TEST_SECRET: envValue } });
      assert.equal(r.code, 0, r.stderr);
      // The RUN really saw both secrets (compared by hash, never by value).
      const layout = mkdtempSync(path.join(e.work, "layout-"));
      spawnSync("tar", ["-xf", out, "-C", layout]);
      const unpack = mkdtempSync(path.join(e.work, "rootfs-"));
      const idx = JSON.parse(readFileSync(path.join(layout, "index.json"), "utf8"));
      const blob = (d: string) => path.join(layout, "blobs", "sha256", d.replace(/^sha256:/, ""));
      const manifest = JSON.parse(readFileSync(blob(idx.manifests[0].digest), "utf8"));
      for (const l of manifest.layers) spawnSync("tar", ["-xzf", blob(l.digest), "-C", unpack]);
      assert.equal(readFileSync(path.join(unpack, "f.sha"), "utf8"), sha(fileValue) + "\n");
      assert.equal(readFileSync(path.join(unpack, "e.sha"), "utf8"), sha(envValue) + "\n");
      assert.equal(readFileSync(path.join(unpack, "env.sha"), "utf8"), sha(envValue) + "\n");
      assert.equal(readFileSync(path.join(unpack, "f.stat"), "utf8"), "400 0\n");
      // The secret target is a mount stub: absent from the image.
      assert.ok(!existsSync(path.join(unpack, "run", "secrets", "f")));
      const needles = [fileValue, envValue];
      assert.deepEqual(filesHolding(layout, needles), [], "a blob holds a secret");
      assert.deepEqual(filesHolding(unpack, needles), [], "the image holds a secret");
      assert.deepEqual(filesHolding(store, needles), [], "the store holds a secret");
      assert.ok(existsSync(path.join(store, "meta.db")), "the store's SQLite was searched");
      assert.ok(!needles.some((n) => r.stderr.includes(n)), "rawjson/stderr holds a secret");
      assert.ok(!needles.some((n) => r.stdout.includes(n)), "stdout holds a secret");
    });

    for (const tmpfs of [true, false]) {
      test(
        tmpfs
          ? "kill -9 during a RUN that holds secrets leaves them on no disk"
          : "without a tmpfs, the next start removes a killed RUN's secrets from $XDG_RUNTIME_DIR",
        () => killDuringSecretRun(tmpfs),
      );
    }

    async function killDuringSecretRun(tmpfs: boolean): Promise<void> {
      const fileValue = `kill-file-${randomBytes(12).toString("hex")}`;
      const envValue = `kill-env-${randomBytes(12).toString("hex")}`;
      const src = secretFile(fileValue, as());
      const stamp = path.join(e.work, `stamp-${randomBytes(4).toString("hex")}`);
      writeFileSync(stamp, "");
      const store = storeDir(e, as());
      const xdg = storeDir(e, as()); // $XDG_RUNTIME_DIR for this run
      chmodSync(xdg, 0o700);
      const marker = `${Date.now() % 100000}.${randomBytes(2).readUInt16BE()}`;
      const ctx = makeContext(e, {
        Dockerfile: `FROM ${e.busybox}
RUN --mount=type=secret,id=f --mount=type=secret,id=e,env=SECRET_E \\
    cat /run/secrets/f > /dev/null && echo "running-$((6 * 7))" && sleep ${marker}
`,
      }, as());
      const p = startTsk(
        [
          "build",
          "--root",
          store,
          "--progress",
          "plain",
          "--secret",
          `id=f,src=${src}`,
          "--secret",
          "id=e,env=TSK_TEST_SECRET",
          ctx,
        ],
        {
          TSK_TEST_SECRET: envValue,
          XDG_RUNTIME_DIR: xdg,
          ...(tmpfs ? {} : { TSK_RUNTIME_TMPFS: "0" }),
        },
        as(),
      );
      await p.ready(/running-42/); // printed by the RUN itself, not its command line
      p.kill();
      await p.done;
      // The RUN's sleep may outlive tsk (in its own pid namespace); end it, found by its marker.
      await killLeftover(marker);
      const needles = [fileValue, envValue];
      assert.deepEqual(filesHolding(store, needles), [], "the store holds a secret");
      if (tmpfs) {
        assert.deepEqual(filesHolding(xdg, needles), [], "$XDG_RUNTIME_DIR holds a secret");
        assert.deepEqual(
          changedFilesHolding(os.tmpdir(), stamp, needles, [src]),
          [],
          "the temp dir holds a secret",
        );
      } else {
        // The fallback really held them there (so the cleanup below is what removes them).
        assert.notDeepEqual(filesHolding(xdg, needles), [], "the fallback dir was not used");
      }
      // The next start removes what the killed process left (its empty mount point, or the
      // fallback directory with the secrets).
      const r = await tsk(["du", "--root", store], { as: as(), env: { XDG_RUNTIME_DIR: xdg } });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(readdirSync(path.join(xdg, "tsk")), [], "leftover runtime directories");
      assert.deepEqual(filesHolding(xdg, needles), [], "$XDG_RUNTIME_DIR holds a secret");
    }
  });
}

/** dist/tsk in its own process group (as `as`), with a wait for a stderr line and a group kill. */
function startTsk(args: string[], extraEnv: Record<string, string>, as?: UnprivilegedUser) {
  const base = as
    ? {
      HOME: as.home,
      USER: as.name,
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      ...extraEnv,
    }
    : { ...(process.env as Record<string, string>), ...extraEnv };
  const [cmd, argv] = as
    ? [
      "setpriv",
      [
        `--reuid=${as.uid}`,
        `--regid=${as.gid}`,
        "--init-groups",
        "env",
        "-i",
        ...Object.entries(base).map(([k, v]) => `${k}=${v}`),
        TSK,
        ...args,
      ],
    ]
    : [TSK, args];
  const child = spawn(cmd, argv, {
    env: base,
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  const waiters: (() => void)[] = [];
  child.stderr!.on("data", (c: Buffer) => {
    stderr += c.toString();
    for (const w of waiters) w();
  });
  const done = new Promise<number>((resolve) => child.on("close", (code) => resolve(code ?? 137)));
  return {
    done,
    ready: (re: RegExp) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (re.test(stderr)) resolve();
        };
        waiters.push(check);
        done.then(() => reject(new Error(`tsk ended before ${re}:\n${stderr}`)));
        check();
      }),
    kill: () => process.kill(-child.pid!, "SIGKILL"),
  };
}

/** SIGKILL the process whose command line is `sleep <marker>` (ours, by its unique argument). */
async function killLeftover(marker: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    let alive = false;
    for (const pid of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
      let cmd = "";
      try {
        cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      } catch {
        continue;
      }
      if (cmd === `sleep\0${marker}\0`) {
        alive = true;
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          // gone
        }
      }
    }
    if (!alive) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}
