import { test } from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { basicAuth, dockerConfigDir, getCredentials, normalizeAuthKey } from "./auth.ts";

async function withConfig(
  cfg: unknown,
  fn: (dir: string, env: Record<string, string | undefined>) => Promise<void>,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "tsk-auth-"));
  try {
    await writeFile(join(dir, "config.json"), JSON.stringify(cfg));
    const bin = join(dir, "bin");
    await mkdir(bin);
    // A credential helper that knows one server and logs what it was asked.
    await writeFile(
      join(bin, "docker-credential-fake"),
      `#!/bin/sh
read server
echo "$server" >> "${dir}/asked"
case "$server" in
  https://index.docker.io/v1/) echo '{"ServerURL":"x","Username":"hubuser","Secret":"hubpass"}';;
  helper.example) echo '{"ServerURL":"x","Username":"<token>","Secret":"refresh-123"}';;
  *) echo "credentials not found in native keychain"; exit 1;;
esac
`,
    );
    await chmod(join(bin, "docker-credential-fake"), 0o755);
    const env = { ...process.env, DOCKER_CONFIG: dir, PATH: `${bin}:${process.env.PATH}` };
    await fn(dir, env);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("normalizeAuthKey strips scheme/path and folds Docker Hub aliases", () => {
  assert.equal(normalizeAuthKey("https://index.docker.io/v1/"), "docker.io");
  assert.equal(normalizeAuthKey("registry-1.docker.io"), "docker.io");
  assert.equal(normalizeAuthKey("http://LocalHost:5000/v2/"), "localhost:5000");
  assert.equal(normalizeAuthKey("127.0.0.1:5000"), "127.0.0.1:5000");
});

test("DOCKER_CONFIG wins over HOME", () => {
  assert.equal(dockerConfigDir({ env: { DOCKER_CONFIG: "/x", HOME: "/h" } }), "/x");
  assert.equal(dockerConfigDir({ env: { HOME: "/h" } }), "/h/.docker");
  assert.equal(dockerConfigDir({ configDir: "/c", env: { DOCKER_CONFIG: "/x" } }), "/c");
});

test("auths: base64 auth, username/password, identitytoken, Hub alias", () =>
  withConfig(
    {
      auths: {
        "https://index.docker.io/v1/": { auth: basicAuth("hub", "p:w:d") },
        "127.0.0.1:5000": { username: "u", password: "p" },
        "http://tok.example/": { identitytoken: "rt" },
      },
    },
    async (_dir, env) => {
      assert.deepEqual(await getCredentials("docker.io", { env }), {
        username: "hub",
        password: "p:w:d",
      });
      assert.deepEqual(await getCredentials("127.0.0.1:5000", { env }), {
        username: "u",
        password: "p",
      });
      assert.deepEqual(await getCredentials("tok.example", { env }), { identityToken: "rt" });
      assert.equal(await getCredentials("other.example", { env }), undefined);
    },
  ));

test("credHelpers per host, credsStore as default, not-found falls back to auths", () =>
  withConfig(
    {
      credsStore: "fake",
      credHelpers: { "helper.example": "fake" },
      auths: { "plain.example": { auth: basicAuth("a", "b") } },
    },
    async (dir, env) => {
      assert.deepEqual(await getCredentials("helper.example", { env }), {
        identityToken: "refresh-123",
      });
      assert.deepEqual(await getCredentials("docker.io", { env }), {
        username: "hubuser",
        password: "hubpass",
      });
      assert.deepEqual(await getCredentials("plain.example", { env }), {
        username: "a",
        password: "b",
      });
      assert.equal(await getCredentials("nothing.example", { env }), undefined);
      const { readFile } = await import("node:fs/promises");
      const asked = (await readFile(join(dir, "asked"), "utf8")).trim().split("\n");
      assert.deepEqual(asked, [
        "helper.example",
        "https://index.docker.io/v1/",
        "plain.example",
        "nothing.example",
      ]);
    },
  ));

test("a missing helper binary is a clear error; no config means no credentials", async () => {
  await withConfig({ credsStore: "nonexistent-helper" }, async (_dir, env) => {
    await assert.rejects(
      getCredentials("x.example", { env }),
      /docker-credential-nonexistent-helper not found in PATH/,
    );
  });
  assert.equal(await getCredentials("x.example", { configDir: "/nonexistent/tsk" }), undefined);
});
