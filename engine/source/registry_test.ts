import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { ContentStore, digestOf } from "../content/store.ts";
import type { Descriptor } from "../types.ts";
import { basicAuth } from "./auth.ts";
import { MediaTypes } from "./media_types.ts";
import { matchPlatform, parseWwwAuthenticate, RegistryClient, RegistryError } from "./registry.ts";
import { type RegistryFixture, startRegistry } from "../../tests/fixtures/registry.ts";
import {
  buildBusyboxImage,
  type BuiltImage,
  pushBusybox,
} from "../../tests/fixtures/base_images.ts";

const temps: string[] = [];
async function tempDir(prefix = "tsk-reg-test-"): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  temps.push(d);
  return d;
}
async function freshClient(extra: Partial<ConstructorParameters<typeof RegistryClient>[0]> = {}) {
  const store = new ContentStore(await tempDir("tsk-store-"));
  // configDir pointing nowhere: never pick up the developer's own docker credentials.
  return {
    store,
    client: new RegistryClient({ store, configDir: "/nonexistent/tsk-test", ...extra }),
  };
}
function skopeo(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("skopeo", args, { encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) reject(new Error(`skopeo ${args.join(" ")}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}
const sha256 = (s: string) => "sha256:" + createHash("sha256").update(s).digest("hex");

let image: BuiltImage;
before(async () => {
  image = await buildBusyboxImage(join(await tempDir("tsk-bb-"), "layout"));
});
after(async () => {
  for (const d of temps) await rm(d, { recursive: true, force: true });
});

test("parseWwwAuthenticate and matchPlatform", () => {
  assert.deepEqual(
    parseWwwAuthenticate(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull",error="insufficient_scope"',
    ),
    {
      scheme: "bearer",
      params: {
        realm: "https://auth.docker.io/token",
        service: "registry.docker.io",
        scope: "repository:library/busybox:pull",
        error: "insufficient_scope",
      },
    },
  );
  assert.deepEqual(parseWwwAuthenticate('Basic realm="x"'), {
    scheme: "basic",
    params: { realm: "x" },
  });
  assert.equal(parseWwwAuthenticate(null), undefined);
  const m = (os: string, architecture: string, variant?: string): Descriptor => ({
    mediaType: MediaTypes.ociManifest,
    digest: sha256(os + architecture + variant),
    size: 1,
    platform: { os, architecture, ...(variant ? { variant } : {}) },
  });
  const list = [
    m("unknown", "unknown"),
    m("linux", "amd64"),
    m("linux", "arm", "v6"),
    m("linux", "arm", "v7"),
    m("linux", "arm64", "v8"),
  ];
  assert.equal(matchPlatform(list, { os: "linux", architecture: "x86_64" }), list[1]);
  assert.equal(matchPlatform(list, { os: "linux", architecture: "arm" }), list[3]);
  assert.equal(matchPlatform(list, { os: "linux", architecture: "arm", variant: "v6" }), list[2]);
  assert.equal(matchPlatform(list, { os: "linux", architecture: "arm64" }), list[4]);
  assert.equal(matchPlatform(list, { os: "linux", architecture: "s390x" }), undefined);
  assert.equal(matchPlatform(list, { os: "windows", architecture: "amd64" }), undefined);
});

test("plain http only for loopback and insecure hosts", async () => {
  const { client } = await freshClient({ insecure: ["reg.internal:5000", "other.internal"] });
  assert.equal(client.baseUrl("localhost:5000"), "http://localhost:5000");
  assert.equal(client.baseUrl("127.0.0.1:5000"), "http://127.0.0.1:5000");
  assert.equal(client.baseUrl("[::1]:5000"), "http://[::1]:5000");
  assert.equal(client.baseUrl("reg.internal:5000"), "http://reg.internal:5000");
  assert.equal(client.baseUrl("other.internal:443"), "http://other.internal:443");
  assert.equal(client.baseUrl("reg.internal:6000"), "https://reg.internal:6000");
  assert.equal(client.baseUrl("ghcr.io"), "https://ghcr.io");
  assert.equal(client.baseUrl("docker.io"), "https://registry-1.docker.io");
});

describe("registry without auth", () => {
  let reg: RegistryFixture;
  before(async () => {
    reg = await startRegistry();
  });
  after(async () => {
    await reg?.stop();
  });

  test("pulls an image index pushed by skopeo, then its layer", async () => {
    const dest = `${reg.host}/skopeo/busybox:idx`;
    await skopeo([
      "copy",
      "--all",
      "--dest-tls-verify=false",
      `oci:${image.layout}:latest`,
      `docker://${dest}`,
    ]);
    const { store, client } = await freshClient();
    const r = await client.resolve(dest, {
      os: "linux",
      architecture: image.platform.architecture,
    });
    assert.equal(r.indexDigest, image.indexDigest);
    assert.equal(r.manifestDigest, image.manifestDigest);
    assert.equal(r.ref, `${reg.host}/skopeo/busybox@${image.manifestDigest}`);
    assert.equal(r.manifestMediaType, MediaTypes.ociManifest);
    assert.deepEqual(r.configDescriptor, image.config);
    assert.deepEqual(r.layers, [image.layer]);
    assert.deepEqual(r.config.rootfs?.diff_ids, [image.diffId]);
    assert.equal(r.config.architecture, image.platform.architecture);
    // manifest, index and config are in the store; the layer is not until fetched
    for (const d of [image.indexDigest, image.manifestDigest, image.config.digest]) {
      assert.equal(await store.has(d), true, d);
    }
    assert.equal(await store.has(image.layer.digest), false);
    await Promise.all([client.fetchBlob(r.ref, r.layers[0]), client.fetchBlob(r.ref, r.layers[0])]);
    assert.equal(await store.verify(image.layer.digest), true);
    // present blobs are not fetched again (even from a registry that is unreachable)
    await client.fetchBlob(`127.0.0.1:1/nothing@${image.manifestDigest}`, r.layers[0]);
  });

  test("pulls a single manifest (no index) pushed by skopeo", async () => {
    const dest = `${reg.host}/skopeo/single:1`;
    await skopeo([
      "copy",
      "--dest-tls-verify=false",
      `oci:${image.layout}:latest`,
      `docker://${dest}`,
    ]);
    const raw = await skopeo(["inspect", "--raw", "--tls-verify=false", `docker://${dest}`]);
    const { client } = await freshClient();
    const r = await client.resolve(dest, image.platform);
    assert.equal(r.indexDigest, undefined);
    assert.equal(r.manifestDigest, sha256(raw));
    assert.deepEqual(r.layers.map((l) => l.digest), [image.layer.digest]);
  });

  test("push then pull back: same digests, also seen by skopeo", async () => {
    const pushed = await pushBusybox(reg.host, "pushed/busybox", "v1");
    assert.equal(pushed.indexDigest, image.indexDigest);
    const raw = await skopeo([
      "inspect",
      "--raw",
      "--tls-verify=false",
      `docker://${reg.host}/pushed/busybox:v1`,
    ]);
    assert.equal(sha256(raw), pushed.indexDigest);
    const { store, client } = await freshClient();
    const r = await client.resolve(`${reg.host}/pushed/busybox:v1`, image.platform);
    assert.equal(r.indexDigest, pushed.indexDigest);
    assert.equal(r.manifestDigest, pushed.manifestDigest);
    await client.fetchBlob(r.ref, r.layers[0]);
    assert.equal(await store.verify(r.layers[0].digest), true);
    // and by digest
    const byDigest = await client.resolve(
      `${reg.host}/pushed/busybox@${pushed.indexDigest}`,
      image.platform,
    );
    assert.equal(byDigest.manifestDigest, pushed.manifestDigest);
  });

  test("chunked PATCH upload, blob skip on re-push, manifest PUT by digest", async () => {
    const { store, client } = await freshClient({ chunkSize: 100 * 1024 });
    const layerBytes = new Uint8Array(350 * 1024).map((_, i) => (i * 7) & 0xff);
    const layer = await store.putBytes(layerBytes);
    const cfg = await store.putBytes(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        rootfs: { type: "layers", diff_ids: [] },
      }),
    );
    const config: Descriptor = { mediaType: MediaTypes.dockerConfig, ...cfg };
    const layerDesc: Descriptor = { mediaType: MediaTypes.dockerLayer, ...layer };
    const manifest = new TextEncoder().encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaTypes.dockerManifest,
      config,
      layers: [layerDesc],
    }));
    const ref = `${reg.host}/chunked/img:1`;
    const res = await client.push(ref, {
      manifest,
      manifestMediaType: MediaTypes.dockerManifest,
      blobs: [config, layerDesc],
    });
    assert.equal(res.digest, digestOf(manifest));
    assert.equal(res.ref, `${reg.host}/chunked/img@${res.digest}`);
    // second push: blobs exist (HEAD 200), only the manifest is PUT again
    const again = await client.push(`${reg.host}/chunked/img:2`, {
      manifest,
      manifestMediaType: MediaTypes.dockerManifest,
      blobs: [config, layerDesc],
    });
    assert.equal(again.digest, res.digest);
    const other = await freshClient();
    const r = await other.client.resolve(ref, { os: "linux", architecture: "amd64" });
    assert.equal(r.manifestMediaType, MediaTypes.dockerManifest);
    assert.equal(r.manifestDigest, res.digest);
    await other.client.fetchBlob(r.ref, r.layers[0]);
    assert.deepEqual(await other.store.readBytes(layer.digest), layerBytes);
    // push refuses a blob that is not in the store, and a ref digest that does not match
    const missing: Descriptor = {
      mediaType: MediaTypes.dockerLayer,
      digest: digestOf("nope"),
      size: 4,
    };
    await assert.rejects(
      client.push(`${reg.host}/chunked/img:3`, {
        manifest,
        manifestMediaType: MediaTypes.dockerManifest,
        blobs: [missing],
      }),
      /blob sha256:[0-9a-f]+ is not in the content store/,
    );
    await assert.rejects(
      client.push(`${reg.host}/chunked/img@${digestOf("x")}`, {
        manifest,
        manifestMediaType: MediaTypes.dockerManifest,
        blobs: [],
      }),
      /the manifest's digest is/,
    );
  });

  test("manifest list platform selection (Docker media types) and the error listing platforms", async () => {
    const { store, client } = await freshClient();
    const layerInfo = await store.putBytes("not really a tar, but a blob");
    const layer: Descriptor = { mediaType: MediaTypes.dockerLayerGzip, ...layerInfo };
    const children: Descriptor[] = [];
    for (
      const p of [{ architecture: "amd64" }, { architecture: "arm64", variant: "v8" }, {
        architecture: "arm",
        variant: "v7",
      }]
    ) {
      const cfg = await store.putBytes(
        JSON.stringify({ os: "linux", ...p, rootfs: { type: "layers", diff_ids: [] } }),
      );
      const config: Descriptor = { mediaType: MediaTypes.dockerConfig, ...cfg };
      const manifest = new TextEncoder().encode(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaTypes.dockerManifest,
          config,
          layers: [layer],
        }),
      );
      const { digest } = await client.push(`${reg.host}/multi/app@${digestOf(manifest)}`, {
        manifest,
        manifestMediaType: MediaTypes.dockerManifest,
        blobs: [config, layer],
      });
      children.push({
        mediaType: MediaTypes.dockerManifest,
        digest,
        size: manifest.byteLength,
        platform: { os: "linux", ...p },
      });
    }
    const list = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.dockerManifestList,
        manifests: children,
      }),
    );
    const pushed = await client.push(`${reg.host}/multi/app:latest`, {
      manifest: list,
      manifestMediaType: MediaTypes.dockerManifestList,
      blobs: [],
    });

    const puller = await freshClient();
    const arm64 = await puller.client.resolve(`${reg.host}/multi/app`, {
      os: "linux",
      architecture: "arm64",
    });
    assert.equal(arm64.manifestDigest, children[1].digest);
    assert.equal(arm64.indexDigest, pushed.digest);
    assert.equal(arm64.config.architecture, "arm64");
    const arm = await puller.client.resolve(`${reg.host}/multi/app`, {
      os: "linux",
      architecture: "arm",
      variant: "v7",
    });
    assert.equal(arm.manifestDigest, children[2].digest);
    const amd = await puller.client.resolve(`${reg.host}/multi/app:latest`, {
      os: "linux",
      architecture: "amd64",
    });
    assert.equal(amd.manifestDigest, children[0].digest);
    await assert.rejects(
      puller.client.resolve(`${reg.host}/multi/app`, { os: "linux", architecture: "s390x" }),
      (e: unknown) => {
        assert.ok(e instanceof RegistryError);
        assert.match(
          e.message,
          new RegExp(
            `no matching manifest for linux/s390x in ${reg.host}/multi/app:latest; available platforms: linux/amd64, linux/arm64/v8, linux/arm/v7`,
          ),
        );
        return true;
      },
    );
  });

  test("unknown tag / repository errors name the ref", async () => {
    const { client } = await freshClient();
    await assert.rejects(
      client.resolve(`${reg.host}/skopeo/busybox:nope`, image.platform),
      new RegExp(`manifest unknown: ${reg.host}/skopeo/busybox:nope`),
    );
    await assert.rejects(
      client.resolve(`${reg.host}/no/such/repo:1`, image.platform),
      new RegExp(`manifest unknown: ${reg.host}/no/such/repo:1`),
    );
    await assert.rejects(
      client.resolve("127.0.0.1:1/x:1", image.platform),
      /cannot reach registry http:\/\/127\.0\.0\.1:1\/v2\/ for 127\.0\.0\.1:1\/x:1/,
    );
  });

  test("a blob whose content does not match its digest is rejected and not stored", async () => {
    // Own registry: blobs are shared across repositories and this one gets corrupted.
    const reg = await startRegistry();
    try {
      await tamperedBlob(reg);
    } finally {
      await reg.stop();
    }
  });

  async function tamperedBlob(reg: RegistryFixture): Promise<void> {
    await pushBusybox(reg.host, "tampered/busybox", "latest");
    // Corrupt the layer in the registry's own storage: it serves whatever is on disk.
    const hex = image.layer.digest.slice(7);
    const data = join(
      reg.dir,
      "data",
      "docker",
      "registry",
      "v2",
      "blobs",
      "sha256",
      hex.slice(0, 2),
      hex,
      "data",
    );
    const bytes = await readFile(data);
    bytes[bytes.length - 100] ^= 0xff;
    await writeFile(data, bytes);
    const { store, client } = await freshClient();
    const r = await client.resolve(`${reg.host}/tampered/busybox`, image.platform);
    await assert.rejects(
      client.fetchBlob(r.ref, r.layers[0]),
      new RegExp(
        `blob ${image.layer.digest} of .*: digest mismatch: expected ${image.layer.digest}, got sha256:`,
      ),
    );
    assert.equal(await store.has(image.layer.digest), false);
    // a wrong size in the descriptor is caught too
    await assert.rejects(
      client.fetchBlob(r.ref, { ...r.configDescriptor, digest: r.configDescriptor.digest, size: 3 })
        .then(async () => {
          await store.delete(r.configDescriptor.digest);
          await client.fetchBlob(r.ref, { ...r.configDescriptor, size: 3 });
        }),
      /size mismatch/,
    );
  }

  test("a shared download: the first caller's tap failing fails only that caller", async () => {
    const pushed = await pushBusybox(reg.host, "shared/abort", "v1");
    const { store, client } = await freshClient();
    const r = await client.resolve(pushed.ref, image.platform);
    const layer = r.layers[0];
    let chunks = 0;
    // The first caller unpacks while downloading and stops after the first chunk; a second
    // caller (another stage or platform) wants the same blob at the same time.
    const first = client.fetchBlob(r.ref, layer, () => {
      if (++chunks > 1) throw new Error("unpacking stopped");
    });
    const second = client.fetchBlob(r.ref, layer, () => {
      throw new Error("a joining caller's tap is never called");
    });
    await assert.rejects(first, /unpacking stopped/);
    await second;
    assert.ok(chunks > 1, "the first tap saw the download start");
    assert.equal(await store.verify(layer.digest), true);
  });

  test("a download nobody else waits for stops with its tap, leaving nothing behind", async () => {
    const pushed = await pushBusybox(reg.host, "shared/alone", "v1");
    const { store, client } = await freshClient();
    const r = await client.resolve(pushed.ref, image.platform);
    const layer = r.layers[0];
    const first = client.fetchBlob(r.ref, layer, () => {
      throw new Error("unpacking stopped");
    });
    await assert.rejects(first, /unpacking stopped/);
    // The download was stopped, not finished: no blob, no ingest file left.
    assert.equal(await store.has(layer.digest), false);
    const ingest = await readdir(join(store.root, "ingest")).catch(() => []);
    assert.deepEqual(ingest, []);
    // A later caller starts a fresh download.
    await client.fetchBlob(r.ref, layer);
    assert.equal(await store.verify(layer.digest), true);
  });

  test("blob GETs follow redirects to another origin", async () => {
    const seenAuth: Array<string | undefined> = [];
    const front = createServer((req, res) => {
      seenAuth.push(req.headers.authorization);
      res.writeHead(307, { location: `http://${reg.host}${req.url}` });
      res.end();
    });
    await new Promise<void>((r) => front.listen(0, "127.0.0.1", () => r()));
    try {
      const addr = front.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      const { store, client } = await freshClient();
      await pushBusybox(reg.host, "redirect/busybox", "latest");
      const r = await client.resolve(`127.0.0.1:${port}/redirect/busybox`, image.platform);
      assert.equal(r.manifestDigest, image.manifestDigest);
      await client.fetchBlob(r.ref, r.layers[0]);
      assert.equal(await store.verify(r.layers[0].digest), true);
      assert.ok(seenAuth.length >= 3);
    } finally {
      await new Promise<void>((r) => front.close(() => r()));
    }
  });
});

describe("registry with basic auth", () => {
  let reg: RegistryFixture;
  before(async () => {
    reg = await startRegistry({ auth: "basic" });
  });
  after(async () => {
    await reg?.stop();
  });

  async function dockerConfig(auths: Record<string, unknown>): Promise<string> {
    const dir = await tempDir("tsk-docker-config-");
    await writeFile(join(dir, "config.json"), JSON.stringify({ auths }));
    return dir;
  }

  test("push and pull with credentials from $DOCKER_CONFIG/config.json", async () => {
    const cfg = await dockerConfig({
      [reg.host]: { auth: basicAuth(reg.username!, reg.password!) },
    });
    const env = { ...process.env, DOCKER_CONFIG: cfg };
    const pushed = await pushBusybox(reg.host, "private/busybox", "latest", { configDir: cfg });
    const store = new ContentStore(await tempDir("tsk-store-"));
    const client = new RegistryClient({ store, env });
    const r = await client.resolve(`${reg.host}/private/busybox`, image.platform);
    assert.equal(r.indexDigest, pushed.indexDigest);
    await client.fetchBlob(r.ref, r.layers[0]);
    assert.equal(await store.verify(r.layers[0].digest), true);
  });

  test("without credentials: pull access denied naming the cause", async () => {
    const { client } = await freshClient();
    await assert.rejects(
      client.resolve(`${reg.host}/private/busybox`, image.platform),
      (e: unknown) => {
        assert.ok(e instanceof RegistryError);
        assert.equal(e.status, 401);
        assert.match(
          e.message,
          /^pull access denied for 127\.0\.0\.1:\d+\/private\/busybox:latest/,
        );
        assert.match(e.message, new RegExp(`no credentials configured for ${reg.host}`));
        return true;
      },
    );
    const cfg = await dockerConfig({
      [`http://${reg.host}`]: { username: reg.username, password: "wrong" },
    });
    const bad = new RegistryClient({
      store: new ContentStore(await tempDir()),
      env: { ...process.env, DOCKER_CONFIG: cfg },
    });
    await assert.rejects(
      bad.resolve(`${reg.host}/private/busybox`, image.platform),
      new RegExp(
        `pull access denied .*the credentials configured for ${reg.host} were not accepted`,
      ),
    );
    await assert.rejects(
      bad.push(`${reg.host}/private/other:1`, {
        manifest: image.manifest.bytes,
        manifestMediaType: MediaTypes.ociManifest,
        blobs: [],
      }),
      /push access denied for 127\.0\.0\.1:\d+\/private\/other:1/,
    );
  });
});

describe("registry with token auth", () => {
  let reg: RegistryFixture;
  before(async () => {
    reg = await startRegistry({ auth: "token" });
  });
  after(async () => {
    await reg?.stop();
  });

  test("bearer token via basic credentials; tokens cached per scope", async () => {
    const creds = { [reg.host]: { username: reg.username, password: reg.password } };
    const pushed = await pushBusybox(reg.host, "tok/busybox", "latest", {
      username: reg.username,
      password: reg.password,
    });
    const { store, client } = await freshClient({ credentials: creds });
    const before = reg.tokenRequests!();
    const r = await client.resolve(`${reg.host}/tok/busybox`, image.platform);
    await client.fetchBlob(r.ref, r.layers[0]);
    await client.resolve(`${reg.host}/tok/busybox:latest`, image.platform);
    assert.equal(reg.tokenRequests!() - before, 1, "one token for repository:tok/busybox:pull");
    assert.equal(r.indexDigest, pushed.indexDigest);
    assert.equal(await store.verify(r.layers[0].digest), true);
  });

  test("identity token (OAuth2 refresh_token grant, access_token answer)", async () => {
    await pushBusybox(reg.host, "tok/idt", "latest", {
      username: reg.username,
      password: reg.password,
    });
    const dir = await tempDir("tsk-docker-config-");
    await writeFile(
      join(dir, "config.json"),
      JSON.stringify({ auths: { [reg.host]: { identitytoken: reg.refreshToken } } }),
    );
    const client = new RegistryClient({ store: new ContentStore(await tempDir()), configDir: dir });
    const r = await client.resolve(`${reg.host}/tok/idt`, image.platform);
    assert.equal(r.manifestDigest, image.manifestDigest);
  });

  test("anonymous gets a token without access: pull access denied; bad password: token server refuses", async () => {
    const { client } = await freshClient();
    await assert.rejects(
      client.resolve(`${reg.host}/tok/busybox`, image.platform),
      new RegExp(
        `pull access denied for ${reg.host}/tok/busybox:latest.*no credentials configured for ${reg.host}`,
      ),
    );
    const { client: bad } = await freshClient({
      credentials: { [reg.host]: { username: reg.username, password: "nope" } },
    });
    await assert.rejects(
      bad.resolve(`${reg.host}/tok/busybox`, image.platform),
      new RegExp(
        `authentication failed for ${reg.host}/tok/busybox:latest: the credentials configured for ${reg.host} were rejected by token server`,
      ),
    );
  });
});
