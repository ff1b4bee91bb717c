/**
 * NamespaceTelemetry (src/telemetry/telemetry-config.ts) ↔ the bytes of
 * `amesh.telemetry.v1.Telemetry` (proto/amesh/telemetry/v1/telemetry.proto): a protobuf
 * envelope whose `json` field carries the object, validated both ways by the one schema
 * (json-envelope.ts), as waypoint-codec.ts does for WaypointConfig. A refusal is
 * AMESH_XDS_INVALID_RESOURCE with `<field path>: <problem>` (the NACK reason).
 */
import { namespaceTelemetrySchema, type NamespaceTelemetry } from '../telemetry/telemetry-config.js';
import { jsonEnvelopeCodec } from './json-envelope.js';
import { xdsProto } from './proto.js';

export { TELEMETRY_TYPE_URL } from '../telemetry/telemetry-config.js';

const codec = jsonEnvelopeCodec<NamespaceTelemetry>({ type: () => xdsProto().telemetry, message: 'amesh.telemetry.v1.Telemetry', schema: namespaceTelemetrySchema, root: 'telemetry' });

export function encodeTelemetry(t: NamespaceTelemetry): Uint8Array {
  return codec.encode(t);
}

export function decodeTelemetry(bytes: Uint8Array): NamespaceTelemetry {
  return codec.decode(bytes);
}
