import { test } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { Code, Deframer, frame, GrpcClient, GrpcError, type Handler, serveGrpc } from "./grpc.ts";

test("frame and Deframer: messages split across and joined within chunks", () => {
  const a = frame(new Uint8Array([1, 2, 3])), b = frame(new Uint8Array(0)), c = frame(new Uint8Array(300).fill(7));
  const all = new Uint8Array([...a, ...b, ...c]);
  const d = new Deframer();
  const got: Uint8Array[] = [];
  for (let i = 0; i < all.length; i += 4) got.push(...d.push(all.subarray(i, i + 4)));
  assert.deepEqual(got.map((m) => m.length), [3, 0, 300]);
  assert.deepEqual([...got[0]], [1, 2, 3]);
  assert.equal(d.pending, 0);
  assert.throws(() => new Deframer().push(new Uint8Array([1, 0, 0, 0, 0])), /compressed/);
});

test("client and server over one socket: unary, streaming, status errors, unknown methods", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tsk-grpc-"));
  const sockPath = path.join(dir, "s");
  const handlers = new Map<string, Handler>([
    ["/t.S/Echo", async (call) => {
      for await (const m of call.messages) call.send(m);
    }],
    ["/t.S/Fail", async (call) => {
      for await (const _ of call.messages) break;
      throw new GrpcError(Code.NOT_FOUND, "no such thing: ü");
    }],
  ]);
  const server = net.createServer((conn) => serveGrpc(conn, handlers));
  await new Promise<void>((r) => server.listen(sockPath, r));
  const sock = net.connect({ path: sockPath });
  const session = http2.connect("http://test", { createConnection: () => sock as never });
  const client = new GrpcClient(session);
  try {
    assert.deepEqual([...await client.unary("/t.S/Echo", new Uint8Array([9, 8]))], [9, 8]);
    const call = client.call("/t.S/Echo");
    for (let i = 0; i < 3; i++) call.send(new Uint8Array([i]));
    call.end();
    const got: number[] = [];
    for await (const m of call.messages) got.push(m[0]);
    assert.deepEqual(got, [0, 1, 2]);
    await assert.rejects(client.unary("/t.S/Fail", new Uint8Array()), (e: GrpcError) => {
      assert.equal(e.code, Code.NOT_FOUND);
      assert.equal(e.message, "no such thing: ü");
      return true;
    });
    await assert.rejects(client.unary("/t.S/Nope", new Uint8Array()), (e: GrpcError) => e.code === Code.UNIMPLEMENTED);
  } finally {
    session.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
