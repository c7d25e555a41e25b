/**
 * The isolation probe: capability and /proc/self/status decoding, the choice in each environment
 * of the container matrix (candidates tried with a fake runner, as measured in Docker), the
 * refusal paragraph, and TSK_ISOLATION.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  chooseIsolation,
  decodeCaps,
  type Findings,
  isolationLine,
  parseStatus,
  refusal,
} from "./probe.ts";

const find = (n: string) => `/usr/bin/${n}`;
const DOCKER_CAPS = decodeCaps("00000000a80425fb");

function findings(over: Partial<Findings> = {}): Findings {
  return {
    uid: 1001,
    user: "ci",
    container: "docker",
    seccomp: 2,
    noNewPrivs: false,
    caps: [],
    maxUserNamespaces: 63000,
    unprivilegedUsernsClone: -1,
    subuid: [{ start: 100000, count: 65536 }],
    subgid: [{ start: 100000, count: 65536 }],
    newuidmap: true,
    proot: true,
    tried: [],
    ...over,
  };
}

/** A runner that refuses the candidates whose mode is listed, with `error`. */
function refusing(
  modes: string[],
  f: Findings,
  error = "unshare: unshare failed: Operation not permitted",
) {
  return (prefix: string[]) => {
    const mode = prefix.includes("--map-auto") || prefix.some((a) => a.startsWith("--map-users"))
      ? "subid"
      : prefix.includes("--map-root-user")
      ? "single"
      : "root";
    void f;
    return modes.includes(mode) ? error : "";
  };
}

test("capabilities and status", () => {
  assert.deepEqual(DOCKER_CAPS, [
    "chown",
    "dac_override",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "net_bind_service",
    "net_raw",
    "sys_chroot",
    "mknod",
    "audit_write",
    "setfcap",
  ]); // deno-fmt-ignore
  assert.deepEqual(decodeCaps("0000000000000000"), []);
  const s = parseStatus("Name:\tx\nNoNewPrivs:\t1\nSeccomp:\t2\nCapEff:\t0000000000200000\n");
  assert.deepEqual(s, { seccomp: 2, noNewPrivs: true, caps: ["sys_admin"] });
  assert.equal(parseStatus("").seccomp, -1);
});

test("Docker defaults as root: chroot; as a user: proot; restricted without proot: none", () => {
  const root = findings({ uid: 0, user: "root", caps: DOCKER_CAPS, subuid: [], subgid: [] });
  const c1 = chooseIsolation(root, refusing(["root", "single", "subid"], root), find, "");
  assert.equal(c1.isolation, "chroot");
  assert.equal(c1.prefix, null);
  assert.match(c1.why, /a seccomp filter/);
  assert.deepEqual(c1.findings.tried.map((t) => t.mode), ["root", "single"]);

  const ci = findings();
  const c2 = chooseIsolation(ci, refusing(["single", "subid"], ci), find, "");
  assert.equal(c2.isolation, "proot");
  // The plain user namespace is tried first: --map-auto is never run where namespaces are refused.
  assert.deepEqual(c2.findings.tried.map((t) => t.mode), ["single"]);

  const nnp = findings({ noNewPrivs: true, proot: false });
  const c7 = chooseIsolation(nnp, refusing(["single", "subid"], nnp), find, "");
  assert.equal(c7.isolation, "none");
  const msg = refusal(c7);
  assert.match(msg, /^RUN needs an isolated process, and nothing works here: no namespace/);
  assert.match(msg, /seccomp filter; no_new_privs 1; capabilities none; max_user_namespaces 63000/);
  assert.match(msg, /Builds without RUN still work\. Smallest change: install proot/);
  assert.match(msg, /`--user 0`/);
  assert.match(msg, /--security-opt seccomp=unconfined/);
  assert.doesNotMatch(msg, /\n/);
});

test("newuidmap refused: one id mapped, with the reason in the warning", () => {
  const f = findings({ seccomp: 0 });
  const c = chooseIsolation(
    f,
    (p) =>
      p.includes("--map-auto") ? "newuidmap: write to uid_map failed: Operation not permitted" : "",
    find,
    "",
  );
  assert.equal(c.isolation, "single");
  assert.match(c.warning!, /newuidmap failed \(newuidmap: write to uid_map failed/);
  assert.match(
    isolationLine(c),
    /^isolation: user namespace \(one id mapped\): .*subid: newuidmap/,
  );
});

test("root: mount namespace first, then its own range behind itself", () => {
  const root = findings({
    uid: 0,
    user: "root",
    caps: DOCKER_CAPS,
    subuid: [{ start: 1, count: 65535 }],
    subgid: [{ start: 1, count: 65535 }],
  });
  const c = chooseIsolation(root, () => "", find, "");
  assert.equal(c.isolation, "root");
  const c3 = chooseIsolation({ ...root, tried: [] }, refusing(["root"], root), find, "");
  assert.equal(c3.isolation, "subid");
  assert.deepEqual(c3.prefix!.slice(1, 4), [
    "--map-root-user",
    "--map-users=1,1,65535",
    "--map-groups=1,1,65535",
  ]);
}); // deno-fmt-ignore

test("TSK_ISOLATION forces a mode, and rejects nonsense", () => {
  const f = findings();
  assert.equal(chooseIsolation(f, () => "x", find, "proot").isolation, "proot");
  assert.equal(chooseIsolation(f, () => "x", find, "single").prefix![1], "--user");
  assert.throws(() => chooseIsolation(f, () => "", find, "chroot"), /needs root/);
  assert.throws(() => chooseIsolation(f, () => "", find, "fast"), /TSK_ISOLATION must be one of/);
});
