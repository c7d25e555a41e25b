/**
 * SSH private keys for tsk's in-memory agent (`--ssh ID=KEYFILE…`): OpenSSH-format
 * (`openssh-key-v1`) and PEM/PKCS#8 keys, Ed25519 and RSA, parsed from bytes held in memory only.
 * Each key gives its public key blob (what `ssh-add -L` lists) and signs as the agent protocol
 * asks (RSA with SHA-256/512 when flagged, else SHA-1).
 */
import { createPrivateKey, type KeyObject, sign } from "node:crypto";

export type AgentKey = {
  /** SSH wire-format public key blob. */
  blob: Buffer;
  comment: string;
  /** The signature blob (string alg + string signature) for `data`. */
  sign(data: Buffer, flags: number): Buffer;
};

export const SSH_AGENT_RSA_SHA2_256 = 2;
export const SSH_AGENT_RSA_SHA2_512 = 4;

/** SSH `string`: uint32 length + bytes. */
export function sshString(b: Buffer | string): Buffer {
  const body = typeof b === "string" ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

/** SSH `mpint` from an unsigned big-endian magnitude. */
function mpint(mag: Buffer): Buffer {
  let i = 0;
  while (i < mag.length && mag[i] === 0) i++;
  let b = mag.subarray(i);
  if (b.length && b[0] & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return sshString(b);
}

class Reader {
  #b: Buffer;
  #o = 0;
  constructor(b: Buffer) {
    this.#b = b;
  }
  u32(): number {
    if (this.#o + 4 > this.#b.length) throw new Error("truncated key");
    const v = this.#b.readUInt32BE(this.#o);
    this.#o += 4;
    return v;
  }
  bytes(): Buffer {
    const n = this.u32();
    if (this.#o + n > this.#b.length) throw new Error("truncated key");
    const v = this.#b.subarray(this.#o, this.#o + n);
    this.#o += n;
    return v;
  }
  str(): string {
    return this.bytes().toString();
  }
}

const b64u = (b: Buffer) => {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i).toString("base64url");
};
const big = (b: Buffer) => BigInt("0x" + (b.toString("hex") || "0"));
const unbig = (n: bigint) => {
  let h = n.toString(16);
  if (h.length % 2) h = "0" + h;
  return Buffer.from(h, "hex");
};

function ed25519Key(seed: Buffer, pub: Buffer, comment: string): AgentKey {
  const key = createPrivateKey({
    key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]),
    format: "der",
    type: "pkcs8",
  });
  const blob = Buffer.concat([sshString("ssh-ed25519"), sshString(pub)]);
  return {
    blob,
    comment,
    sign: (data) => Buffer.concat([sshString("ssh-ed25519"), sshString(sign(null, data, key))]),
  };
}

function rsaKey(key: KeyObject, n: Buffer, e: Buffer, comment: string): AgentKey {
  const blob = Buffer.concat([sshString("ssh-rsa"), mpint(e), mpint(n)]);
  return {
    blob,
    comment,
    sign: (data, flags) => {
      const [alg, hash] = flags & SSH_AGENT_RSA_SHA2_512
        ? ["rsa-sha2-512", "sha512"]
        : flags & SSH_AGENT_RSA_SHA2_256
        ? ["rsa-sha2-256", "sha256"]
        : ["ssh-rsa", "sha1"];
      return Buffer.concat([sshString(alg), sshString(sign(hash, data, key))]);
    },
  };
}

function fromKeyObject(key: KeyObject, comment: string): AgentKey {
  const jwk = key.export({ format: "jwk" }) as Record<string, string>;
  if (key.asymmetricKeyType === "ed25519") {
    const seed = Buffer.from(jwk.d, "base64url");
    return ed25519Key(seed, Buffer.from(jwk.x, "base64url"), comment);
  }
  if (key.asymmetricKeyType === "rsa") {
    return rsaKey(key, Buffer.from(jwk.n, "base64url"), Buffer.from(jwk.e, "base64url"), comment);
  }
  throw new Error(`unsupported key type ${key.asymmetricKeyType} (Ed25519 and RSA keys are)`);
}

/** Parses one private key file's bytes; `name` only labels errors and the key comment. */
export function parsePrivateKey(data: Buffer, name: string): AgentKey {
  const text = data.toString("latin1");
  const m = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(
    text,
  );
  if (!m) {
    if (/-----BEGIN (RSA |EC )?PRIVATE KEY-----/.test(text)) {
      return fromKeyObject(createPrivateKey({ key: data }), name);
    }
    if (/ENCRYPTED/.test(text)) {
      throw new Error(
        `${name}: passphrase-protected keys are not supported; add it to ssh-agent and use --ssh default`,
      );
    }
    throw new Error(`${name}: not an SSH private key`);
  }
  const raw = Buffer.from(m[1].replace(/\s+/g, ""), "base64");
  const magic = "openssh-key-v1\0";
  if (raw.subarray(0, magic.length).toString("latin1") !== magic) {
    throw new Error(`${name}: not an openssh-key-v1 key`);
  }
  const r = new Reader(raw.subarray(magic.length));
  const cipher = r.str();
  if (cipher !== "none") {
    throw new Error(
      `${name}: passphrase-protected keys are not supported; add it to ssh-agent and use --ssh default`,
    );
  }
  r.str(); // kdf
  r.bytes(); // kdf options
  if (r.u32() !== 1) throw new Error(`${name}: files with several keys are not supported`);
  r.bytes(); // public key
  const p = new Reader(r.bytes());
  if (p.u32() !== p.u32()) throw new Error(`${name}: corrupt private key (check bytes differ)`);
  const type = p.str();
  if (type === "ssh-ed25519") {
    const pub = p.bytes();
    const priv = p.bytes();
    return ed25519Key(priv.subarray(0, 32), pub, p.str() || name);
  }
  if (type === "ssh-rsa") {
    const n = p.bytes(),
      e = p.bytes(),
      d = p.bytes(),
      iqmp = p.bytes(),
      pp = p.bytes(),
      q = p.bytes();
    const comment = p.str() || name;
    const D = big(d);
    const key = createPrivateKey({
      key: {
        kty: "RSA",
        n: b64u(n),
        e: b64u(e),
        d: b64u(d),
        p: b64u(pp),
        q: b64u(q),
        dp: b64u(unbig(D % (big(pp) - 1n))),
        dq: b64u(unbig(D % (big(q) - 1n))),
        qi: b64u(iqmp),
      },
      format: "jwk",
    });
    return rsaKey(key, n, e, comment);
  }
  throw new Error(`${name}: unsupported key type ${type} (Ed25519 and RSA keys are)`);
}
