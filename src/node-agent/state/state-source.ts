/**
 * Where the node agent's mesh state comes from: the local config file (self-contained mode)
 * or the controller over xDS. The agent only sees snapshots through `start(apply)`; a source
 * calls `apply` for every new state and waits for it (capture included) before it moves on —
 * the xDS source ACKs only then.
 */
import type { MeshSnapshot } from './types.js';

export interface StateSource {
  readonly kind: 'local-file' | 'xds';
  readonly node: string;
  readonly trustDomain: string;
  /** Interfaces the capture attaches to; undefined = detect. */
  readonly uplinks: string[] | undefined;
  /** The state to serve before `apply` is first called: the file's, or empty for xDS. */
  initial(): MeshSnapshot;
  /** Whether the initial state may be applied to capture at start (false for xDS: an empty state would unenrol every pod until the first response). */
  readonly initialIsComplete: boolean;
  /** Begins watching; `apply` is called for each new state, one at a time. */
  start(apply: (snapshot: MeshSnapshot) => Promise<void>): void;
  /** Readiness: the source has delivered a complete state. */
  isReady(): boolean;
  /** For /config_dump. */
  status(): Record<string, unknown>;
  close(): Promise<void>;
}
