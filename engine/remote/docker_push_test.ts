import { test } from "node:test";
import assert from "node:assert/strict";
import { registryAuthHeader } from "./docker_push.ts";

test("X-Registry-Auth: URL-alphabet base64 JSON with the server address; {} without credentials", () => {
  const h = registryAuthHeader("127.0.0.1:5000", { username: "u", password: "p?>" });
  assert.deepEqual(JSON.parse(Buffer.from(h, "base64url").toString()), {
    username: "u",
    password: "p?>",
    serveraddress: "127.0.0.1:5000",
  });
  assert.ok(!/[+/]/.test(h), "URL alphabet");
  assert.equal(h.length % 4, 0, "padded, as Go's base64.URLEncoding");
  assert.equal(Buffer.from(registryAuthHeader("r", undefined), "base64url").toString(), "{}");
  assert.deepEqual(JSON.parse(Buffer.from(registryAuthHeader("r", { identityToken: "t" }), "base64url").toString()), {
    identitytoken: "t",
    serveraddress: "r",
  });
});
