/**
 * Converting a Dockerfile in unit tests: linux/amd64, no build args or ignore patterns, and every
 * base image resolved to an empty one (or one with the given config) without a registry.
 */
import { convertDockerfile, type ConvertOptions, type ConvertResult } from "./convert.ts";

const AMD64 = { OS: "linux", Architecture: "amd64" };

/** A resolver answering every base image with the same digest and this image config. */
export const fakeBase = (config: Record<string, unknown> = {}) => () =>
  Promise.resolve({
    digest: "sha256:" + "0".repeat(64),
    config: { os: "linux", architecture: "amd64", config, history: [] } as never,
  });

/** convertDockerfile with the defaults above; `o` overrides any option. */
export function convertForTest(
  source: string,
  o: Partial<ConvertOptions> = {},
): Promise<ConvertResult> {
  return convertDockerfile({
    source,
    fileName: "Dockerfile",
    buildArgs: {},
    platform: AMD64,
    buildPlatform: AMD64,
    excludes: [],
    resolveImage: fakeBase(),
    ...o,
  });
}
