/**
 * A small gRPC layer over `node:http2` (no grpc-js): length-prefixed messages (1 flag byte +
 * 4-byte big-endian length), `content-type: application/grpc`, status in `grpc-status` /
 * `grpc-message` trailers. A client (unary, server-streaming, bidi calls on an HTTP/2 session)
 * and a server that serves handlers on an existing connection (the upgraded socket BuildKit's
 * session runs on: the client is the gRPC server there).
 */
import http2 from "node:http2";
import type { Duplex } from "node:stream";

/** A gRPC error: `code` is the gRPC status code. */
export class GrpcError extends Error {
  code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}
export const Code = { OK: 0, CANCELLED: 1, UNKNOWN: 2, NOT_FOUND: 5, UNIMPLEMENTED: 12, INTERNAL: 13 };

/** One gRPC message with its 5-byte prefix. */
export function frame(msg: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + msg.length);
  new DataView(out.buffer).setUint32(1, msg.length);
  out.set(msg, 5);
  return out;
}

/** Splits an HTTP/2 data stream into gRPC messages. */
export class Deframer {
  private chunks: Uint8Array[] = [];
  private size = 0;
  push(chunk: Uint8Array): Uint8Array[] {
    this.chunks.push(chunk);
    this.size += chunk.length;
    const out: Uint8Array[] = [];
    while (this.size >= 5) {
      const head = this.peek(5);
      if (head[0] & 1) throw new GrpcError(Code.INTERNAL, "compressed gRPC messages are not supported");
      const len = new DataView(head.buffer, head.byteOffset, 5).getUint32(1);
      if (this.size < 5 + len) break;
      const all = this.take(5 + len);
      out.push(all.subarray(5));
    }
    return out;
  }
  get pending(): number {
    return this.size;
  }
  private peek(n: number): Uint8Array {
    if (this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
    const b = this.concat();
    return b.subarray(0, n);
  }
  private concat(): Uint8Array {
    const b = new Uint8Array(this.size);
    let o = 0;
    for (const c of this.chunks) {
      b.set(c, o);
      o += c.length;
    }
    this.chunks = [b];
    return b;
  }
  private take(n: number): Uint8Array {
    const b = this.chunks[0].length >= n ? this.chunks[0] : this.concat();
    const out = b.slice(0, n);
    const rest = b.subarray(n);
    this.chunks[0] = rest;
    if (!rest.length) this.chunks.shift();
    this.size -= n;
    return out;
  }
}

/** An async queue fed by callbacks, read with `for await`. */
export class Queue<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private waiters: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }[] = [];
  private ended = false;
  private failure: unknown;
  push(v: T) {
    const w = this.waiters.shift();
    if (w) w.resolve({ value: v, done: false });
    else this.items.push(v);
  }
  end(err?: unknown) {
    if (this.ended) return;
    this.ended = true;
    this.failure = err;
    for (const w of this.waiters.splice(0)) {
      if (err) w.reject(err);
      else w.resolve({ value: undefined, done: true });
    }
  }
  next(): Promise<IteratorResult<T>> {
    if (this.items.length) return Promise.resolve({ value: this.items.shift()!, done: false });
    if (this.ended) {
      return this.failure ? Promise.reject(this.failure) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
  [Symbol.asyncIterator](): AsyncIterator<T> {
    return { next: () => this.next() };
  }
}

function statusError(headers: Record<string, unknown>): GrpcError | undefined {
  const code = Number(headers["grpc-status"] ?? Code.UNKNOWN);
  if (code === Code.OK) return undefined;
  let msg = String(headers["grpc-message"] ?? "");
  try {
    msg = decodeURIComponent(msg);
  } catch { /* as sent */ }
  return new GrpcError(code, msg || `gRPC status ${code}`);
}

/** A client call: messages in and out, status at the end. */
export type ClientCall = {
  send(msg: Uint8Array): void;
  end(): void;
  messages: Queue<Uint8Array>;
  cancel(): void;
};

/** gRPC client over one HTTP/2 session. */
export class GrpcClient {
  session: http2.ClientHttp2Session;
  constructor(session: http2.ClientHttp2Session) {
    this.session = session;
  }

  call(path: string, metadata: Record<string, string | string[]> = {}): ClientCall {
    const req = this.session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...metadata,
    });
    const messages = new Queue<Uint8Array>();
    const deframer = new Deframer();
    let status: GrpcError | undefined | null = null;
    req.on("response", (h) => {
      // Trailers-only responses carry the status in the headers.
      if (h["grpc-status"] !== undefined) status = statusError(h);
    });
    req.on("trailers", (h) => {
      status = statusError(h);
    });
    req.on("data", (d: Uint8Array) => {
      try {
        for (const m of deframer.push(d)) messages.push(m);
      } catch (err) {
        messages.end(err);
        req.close(http2.constants.NGHTTP2_CANCEL);
      }
    });
    req.on("end", () => messages.end(status ?? undefined));
    req.on("close", () => {
      if (status === null) {
        messages.end(new GrpcError(Code.UNKNOWN, `${path}: stream closed without a status`));
      } else messages.end(status);
    });
    req.on("error", (err) => messages.end(err));
    return {
      send: (m) => void req.write(frame(m)),
      end: () => void req.end(),
      messages,
      cancel: () => req.close(http2.constants.NGHTTP2_CANCEL),
    };
  }

  async unary(path: string, msg: Uint8Array, metadata?: Record<string, string>): Promise<Uint8Array> {
    const c = this.call(path, metadata);
    c.send(msg);
    c.end();
    let out: Uint8Array | undefined;
    for await (const m of c.messages) out ??= m;
    if (!out) throw new GrpcError(Code.INTERNAL, `${path}: no response message`);
    return out;
  }

  close() {
    this.session.close();
  }
}

/** A server-side call handed to a handler. */
export type ServerCall = {
  path: string;
  headers: http2.IncomingHttpHeaders;
  messages: Queue<Uint8Array>;
  send(msg: Uint8Array): void;
};
export type Handler = (call: ServerCall) => Promise<void>;

/**
 * Serves gRPC `handlers` (keyed by "/pkg.Service/Method") on an existing connection. Returns a
 * function that closes the server side.
 */
export function serveGrpc(conn: Duplex, handlers: Map<string, Handler>, onError?: (e: Error) => void): () => void {
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const path = String(headers[":path"]);
    const handler = handlers.get(path);
    stream.on("error", () => {});
    if (!handler) {
      stream.respond({
        ":status": 200,
        "content-type": "application/grpc",
        "grpc-status": String(Code.UNIMPLEMENTED),
        "grpc-message": encodeURIComponent(`unknown method ${path}`),
      }, { endStream: true });
      return;
    }
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    const messages = new Queue<Uint8Array>();
    const deframer = new Deframer();
    stream.on("data", (d: Uint8Array) => {
      try {
        for (const m of deframer.push(d)) messages.push(m);
      } catch (err) {
        messages.end(err);
      }
    });
    stream.on("end", () => messages.end());
    stream.on("close", () => messages.end(new GrpcError(Code.CANCELLED, "stream closed")));
    let trailers: Record<string, string> = { "grpc-status": "0" };
    stream.on("wantTrailers", () => stream.sendTrailers(trailers));
    const call: ServerCall = {
      path,
      headers,
      messages,
      send: (m) => {
        if (!stream.closed && !stream.destroyed) stream.write(frame(m));
      },
    };
    handler(call).then(
      () => {
        if (!stream.closed) stream.end();
      },
      (err: Error) => {
        const code = err instanceof GrpcError ? err.code : Code.UNKNOWN;
        trailers = { "grpc-status": String(code), "grpc-message": encodeURIComponent(err.message) };
        if (!stream.closed) stream.end();
        if (!(err instanceof GrpcError) || code !== Code.CANCELLED) onError?.(err);
      },
    );
  });
  server.on("sessionError", (e) => onError?.(e));
  server.emit("connection", conn);
  (conn as Duplex & { resume?: () => void }).resume?.();
  return () => {
    server.close();
    conn.destroy();
  };
}
