import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type CacheConfig,
  chainOf,
  decodeInline,
  encodeCacheConfig,
  encodeInline,
  goTime,
  parseCacheConfig,
  sortConfig,
} from "./config.ts";

const d = (c: string) => `sha256:${c.repeat(64)}`;

test("goTime writes Go's RFC 3339 form (fraction trimmed, zero-free)", () => {
  assert.equal(goTime(new Date(Date.UTC(2023, 0, 10, 12, 34, 56, 120))), "2023-01-10T12:34:56.12Z");
  assert.equal(goTime(new Date(0)), "1970-01-01T00:00:00Z");
});

test("encoding follows Go's field order and omitempty (parent 0 omitted, -1 kept)", () => {
  const cfg: CacheConfig = {
    layers: [{ blob: d("a"), parent: -1 }, { blob: d("b"), parent: 0 }],
    records: [
      { digest: d("1") },
      {
        digest: d("2"),
        layers: [{ layer: 1, createdAt: "0001-01-01T00:00:00Z" }],
        inputs: [[{ selector: "sel", link: 0 }]],
      },
    ],
  };
  const text = new TextDecoder().decode(encodeCacheConfig(cfg));
  assert.equal(
    text,
    `{"layers":[{"blob":"${d("a")}","parent":-1},{"blob":"${d("b")}"}],"records":[{"digest":"${
      d("1")
    }"},{"layers":[{"layer":1,"createdAt":"0001-01-01T00:00:00Z"}],"digest":"${
      d("2")
    }","inputs":[[{"selector":"sel","link":0}]]}]}`,
  );
  assert.deepEqual(parseCacheConfig(encodeCacheConfig(cfg)).layers, cfg.layers);
});

test("sortConfig orders layers by blob and records by digest, remapping every index", () => {
  const cfg: CacheConfig = {
    layers: [{ blob: d("c"), parent: -1 }, { blob: d("a"), parent: 0 }],
    records: [
      { digest: d("9"), layers: [{ layer: 1, createdAt: "x" }], inputs: [[{ link: 1 }]] },
      { digest: d("1"), layers: [{ layer: 0, createdAt: "x" }] },
    ],
  };
  const s = sortConfig(cfg);
  assert.deepEqual(s.layers, [{ blob: d("a"), parent: 1 }, { blob: d("c"), parent: -1 }]);
  assert.equal(s.records[0].digest, d("1"));
  assert.equal(s.records[0].layers![0].layer, 1);
  assert.equal(s.records[1].layers![0].layer, 0);
  assert.deepEqual(s.records[1].inputs, [[{ link: 0 }]]);
  assert.deepEqual(chainOf(s.layers, 0), [1, 0]);
  // The same content discovered in another order encodes to the same bytes.
  const swapped: CacheConfig = {
    layers: [{ blob: d("a"), parent: 1 }, { blob: d("c"), parent: -1 }],
    records: [cfg.records[1], { ...cfg.records[0], inputs: [[{ link: 0 }]] }].map((r) => ({
      ...r,
      layers: r.layers!.map((x) => ({ ...x, layer: x.layer === 0 ? 1 : 0 })),
    })),
  };
  assert.deepEqual(encodeCacheConfig(sortConfig(swapped)), encodeCacheConfig(s));
});

test("the importer's validation: empty inputs, bad indices, loops", () => {
  const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
  assert.throws(
    () => parseCacheConfig(enc({ records: [{ digest: d("1"), inputs: [[]] }] })),
    /invalid empty input for record 0/,
  );
  assert.throws(
    () => parseCacheConfig(enc({ records: [{ layers: [{ layer: 3 }] }] })),
    /invalid layer index 3/,
  );
  assert.throws(
    () =>
      parseCacheConfig(
        enc({ records: [{ inputs: [[{ link: 1 }]] }, { inputs: [[{ link: 0 }]] }] }),
      ),
    /invalid looping record/,
  );
  assert.throws(
    () => parseCacheConfig(enc({ layers: [{ blob: d("a"), parent: 1 }, { blob: d("b") }] })),
    /looping layer/,
  );
  assert.throws(() => parseCacheConfig(new TextEncoder().encode("{")), /not valid JSON/);
});

test("inline form: base64 JSON array of records, round trip", () => {
  const recs = [{ digest: d("1"), layers: [{ layer: 0, createdAt: "0001-01-01T00:00:00Z" }] }];
  const v = encodeInline(recs);
  assert.equal(
    Buffer.from(v, "base64").toString(),
    `[{"layers":[{"layer":0,"createdAt":"0001-01-01T00:00:00Z"}],"digest":"${d("1")}"}]`,
  );
  assert.equal(decodeInline(v, 1)[0].layers![0].layer, 0);
  assert.throws(() => decodeInline(v, 0), /invalid layer index/);
});
