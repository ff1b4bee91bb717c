/**
 * amesh's own xDS types carry one JSON document in a protobuf envelope (`string json = 1`):
 * WaypointConfig (waypoint-codec.ts) and Telemetry (telemetry-codec.ts). This is the shared
 * encode/decode: both directions validate with the type's zod schema, so the controller never
 * publishes what a proxy would refuse, and a refusal is AMESH_XDS_INVALID_RESOURCE with
 * `<root>.<field path>: <problem>` (the NACK reason). Encoding is deterministic for equal input.
 */
import type protobuf from 'protobufjs';
import type { z } from 'zod';
import { AmeshError } from '../errors/amesh-error.js';
import { describeConfigIssues } from '../l7/config-schema.js';

export interface JsonEnvelopeCodec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/** `type` is looked up lazily (the proto files load on first use); `message` names it in errors. */
export function jsonEnvelopeCodec<T>(o: { type: () => protobuf.Type; message: string; schema: z.ZodType<T>; root: string }): JsonEnvelopeCodec<T> {
  const validate = (value: unknown): T => {
    const parsed = o.schema.safeParse(value);
    if (!parsed.success) throw new AmeshError('AMESH_XDS_INVALID_RESOURCE', describeConfigIssues(parsed.error, o.root).join('; '));
    return parsed.data;
  };
  return {
    encode(value) {
      const valid = validate(value);
      const type = o.type();
      return type.encode(type.create({ json: JSON.stringify(valid) })).finish();
    },
    decode(bytes) {
      const type = o.type();
      let json: unknown;
      try {
        json = (type.toObject(type.decode(bytes), { defaults: true }) as { json: string }).json;
      } catch (err) {
        throw new AmeshError('AMESH_XDS_INVALID_RESOURCE', `${o.root}: not a valid ${o.message}: ${(err as Error).message}`, { cause: err });
      }
      let value: unknown;
      try {
        value = JSON.parse(json as string);
      } catch (err) {
        throw new AmeshError('AMESH_XDS_INVALID_RESOURCE', `${o.root}.json: not valid JSON: ${(err as Error).message}`, { cause: err });
      }
      return validate(value);
    },
  };
}
