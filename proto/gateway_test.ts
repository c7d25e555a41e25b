import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeGateway, encodeGateway, type GatewayResult } from "./gateway.ts";

test("gateway Result: the ref oneof and byte metadata round-trip; field numbers as upstream", () => {
  const res: GatewayResult = { ref: { id: "r1" }, metadata: { "containerimage.config": new TextEncoder().encode("{}") } };
  const b = encodeGateway("ReturnRequest", { result: res });
  // ReturnRequest.result (1, len) → Result: metadata entry (10) before the oneof member ref (3).
  assert.equal(b[0], 0x0a);
  assert.equal(b[2], 0x52, "map field 10 first (protobuf-go order: oneof members last)");
  const back = decodeGateway<{ result: GatewayResult }>("ReturnRequest", b);
  assert.equal(back.result.ref?.id, "r1");
  assert.equal(new TextDecoder().decode(back.result.metadata!["containerimage.config"]), "{}");
});

test("gateway SolveRequest: the definition bytes are field 1, allowResultReturn field 5", () => {
  const b = encodeGateway("SolveRequest", { Definition: new Uint8Array([1, 2]), allowResultReturn: true });
  assert.deepEqual([...b], [0x0a, 2, 1, 2, 0x28, 1]);
});
