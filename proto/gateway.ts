/**
 * Codec for BuildKit's gateway (LLBBridge) messages (proto/gateway.proto), on tsk's own
 * schema-driven protobuf codec (proto_files.ts embeds the schema text in the compiled binary).
 */
import { Codec } from "./codec.ts";
import { PROTO_FILES } from "./proto_files.ts";
import { parseProto } from "./schema.ts";

export const gatewayCodec: Codec = new Codec(
  parseProto(PROTO_FILES["gateway.proto"], PROTO_FILES),
);

export type GatewayRef = { id?: string; def?: Uint8Array };
export type GatewayResult = {
  refDeprecated?: string;
  ref?: GatewayRef;
  refs?: { refs?: Record<string, GatewayRef> };
  metadata?: Record<string, Uint8Array>;
};
export type PongResponse = { FrontendAPICaps?: { ID?: string; Enabled?: boolean }[] };
export type GatewaySolveResponse = { ref?: string; result?: GatewayResult };

export function encodeGateway(type: string, obj: object): Uint8Array {
  return gatewayCodec.encode(type, obj);
}
export function decodeGateway<T = Record<string, unknown>>(type: string, b: Uint8Array): T {
  return gatewayCodec.decode<T>(type, b);
}
