/** Types shared across the engine: platforms and OCI content descriptors. */

export type Platform = { os: string; architecture: string; variant?: string };

export type Descriptor = {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
};
