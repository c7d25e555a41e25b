/**
 * tsk's frontend as a client-side frontend of a BuildKit (what BuildKit's client.Build and
 * buildx do): the control API's Solve goes out with a Ref and neither a Definition nor a
 * Frontend, which makes the server wait for a frontend on its gateway forwarder; this side then
 * calls `moby.buildkit.v1.frontend.LLBBridge` on the same connection, with the build id in the
 * `buildkit-controlapi-buildid` metadata: Ping, Solve(definition), and Return(result with the
 * image config in `containerimage.config`), so the image exporters get the ENV, CMD, LABEL...
 */
import type { RemoteClient } from "./client.ts";
import { GrpcError } from "./grpc.ts";
import type { SolveRequest } from "../../proto/control.ts";
import {
  decodeGateway,
  encodeGateway,
  type GatewayResult,
  type GatewaySolveResponse,
  type PongResponse,
} from "../../proto/gateway.ts";

const SVC = "/moby.buildkit.v1.frontend.LLBBridge/";
/** BuildKit's client/buildid metadata key (v0.8 and later). */
export const BUILD_ID_KEY = "buildkit-controlapi-buildid";

export type GatewayBuild = {
  /** Undefined: the result is empty (no ref), as BuildKit's frontend returns for `FROM scratch` with only metadata. */
  definition?: Uint8Array;
  /** The image config JSON (result metadata `containerimage.config`). */
  config?: object;
  cacheImports?: { Type: string; Attrs: Record<string, string> }[];
};

/** Runs the control Solve `req` (its Definition and Frontend unset) with `b` as its frontend. */
export async function solveThroughGateway(
  client: RemoteClient,
  req: SolveRequest,
  b: GatewayBuild,
): Promise<Record<string, string>> {
  const md = { [BUILD_ID_KEY]: req.Ref! };
  let controlError: unknown;
  let controlDone = false;
  const control = client.solve({ ...req, Definition: undefined, Frontend: undefined }).then(
    (r) => ((controlDone = true), r),
    (e) => {
      controlDone = true;
      controlError = e;
      throw e;
    },
  );
  control.catch(() => {});
  // The forwarder knows the build once the control Solve registered it (it waits 3 s per call).
  let pong: PongResponse | undefined;
  for (let i = 0; !pong; i++) {
    try {
      pong = decodeGateway<PongResponse>("PongResponse", await client.grpc.unary(SVC + "Ping", encodeGateway("PingRequest", {}), md));
    } catch (err) {
      if (controlDone && controlError) throw controlError;
      if (controlDone || i >= 10 || !/no such job/.test((err as Error).message)) {
        throw new GrpcError((err as GrpcError).code ?? 2, `gateway: ${(err as Error).message}`);
      }
    }
  }
  const caps = new Set((pong.FrontendAPICaps ?? []).filter((c) => c.Enabled === true).map((c) => c.ID));
  if (pong.FrontendAPICaps?.length && !caps.has("return")) {
    throw new GrpcError(12, "the server's gateway cannot take a client frontend's result (no \"return\" capability)");
  }
  const ret = async (r: { result?: GatewayResult; error?: { code: number; message: string } }) => {
    await client.grpc.unary(SVC + "Return", encodeGateway("ReturnRequest", r), md);
  };
  let result: GatewayResult = {};
  if (b.definition) {
    try {
      const res = decodeGateway<GatewaySolveResponse>(
        "SolveResponse",
        await client.grpc.unary(
          SVC + "Solve",
          encodeGateway("SolveRequest", {
            Definition: b.definition,
            allowResultReturn: true,
            CacheImports: b.cacheImports ?? [],
          }),
          md,
        ),
      );
      const id = res.result?.ref?.id ?? res.result?.refDeprecated ?? res.ref ?? "";
      result = caps.has("proto.refarray") ? { ref: { id } } : { refDeprecated: id };
    } catch (err) {
      // The control Solve then fails with this error (and the failed step's status).
      await ret({ error: { code: (err as GrpcError).code ?? 2, message: (err as Error).message } }).catch(() => {});
      await control;
      throw err;
    }
  }
  if (b.config) {
    result.metadata = { "containerimage.config": new TextEncoder().encode(JSON.stringify(b.config)) };
  }
  await ret({ result });
  return await control;
}
