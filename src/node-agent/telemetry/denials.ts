/**
 * The node agent's recent denials, for `/debug/denials` on the admin port and `amesh diagnose`:
 * a bounded ring of the last `capacity` (default 100) refused connections.
 *
 * Fed by the proxies: inbound policy denials (with the deciding policy and rule), connections a
 * policy change closed, and outbound refusals (the destination's 401 — its policy name is only
 * known there — or a route that could not be built: no endpoints, no waypoint, loop).
 *
 * Invariants: memory is bounded (at most `capacity` records, the oldest dropped first); a record is
 * a plain JSON-serializable object; `list()` is newest first and a copy.
 */

export interface DenialRecord {
  /** ISO 8601. */
  time: string;
  direction: 'inbound' | 'outbound';
  /** Source address `ip:port` (or `ip` when the port is unknown). */
  src: string;
  /** Destination address `ip:port` as dialled. */
  dst: string;
  /** The peer's SPIFFE identity, null for plaintext (identity-less) peers. */
  sourceIdentity: string | null;
  /** uid of the workload the connection was for, when known. */
  destinationWorkload?: string;
  /** `namespace/name` of the deciding policy; `(none)` when no policy decided (a route refusal). */
  policy: string;
  /** The deciding rule (`index: description`) or why none did. */
  rule: string;
  reason: string;
}

export const DEFAULT_DENIAL_CAPACITY = 100;

export class DenialLog {
  private readonly ring: Array<DenialRecord | undefined>;
  private next = 0;
  private count = 0;
  /** Every denial recorded since start, including the ones the ring dropped. */
  total = 0;

  constructor(readonly capacity = DEFAULT_DENIAL_CAPACITY) {
    if (!(capacity >= 1)) throw new RangeError(`denial log capacity ${capacity}: expected at least 1`);
    this.ring = new Array<DenialRecord | undefined>(capacity);
  }

  record(r: Omit<DenialRecord, 'time'> & { time?: string }): void {
    this.ring[this.next] = { ...r, time: r.time ?? new Date().toISOString() };
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
    this.total++;
  }

  get size(): number {
    return this.count;
  }

  /** The records held, newest first. */
  list(): DenialRecord[] {
    const out: DenialRecord[] = [];
    for (let i = 1; i <= this.count; i++) out.push(this.ring[(this.next - i + this.capacity) % this.capacity]!);
    return out;
  }
}
