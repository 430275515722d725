/** Decoding limits of PROTOCOL.md. Both are configurable on the hub and the agent. */
export interface Limits {
  /** Largest text frame accepted; larger frames close the socket with 1009. */
  maxFrameBytes: number;
  /** Largest payload after base64 and gzip decoding; inflation stops at this size. */
  maxPayloadBytes: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxFrameBytes: 1024 * 1024, // 1 MiB
  maxPayloadBytes: 4 * 1024 * 1024, // 4 MiB
});

/** Envelope and exec ids: 1-64 characters of `[A-Za-z0-9_-]`. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** A systemd unit name, the only form a `service` parameter may take. */
export const UNIT_NAME_PATTERN = /^[A-Za-z0-9@._:-]{1,200}$/;
