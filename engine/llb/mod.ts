/** Public entry point of the LLB builder: re-exports the builder API, marshal, load and dump. */
export * from "./state.ts";
export * from "./source.ts";
export * from "./exec.ts";
export * from "./fileop.ts";
export * from "./mergediff.ts";
export * from "./marshal.ts";
export * from "./load.ts";
export * from "./dump.ts";
export * from "./caps.ts";
export * from "./platform.ts";
