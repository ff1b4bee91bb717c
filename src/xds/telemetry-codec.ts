/**
 * NamespaceTelemetry (src/telemetry/telemetry-config.ts) ↔ the bytes of
 * `amesh.telemetry.v1.Telemetry` (proto/amesh/telemetry/v1/telemetry.proto): a protobuf
 * envelope whose `json` field carries the object, validated both ways by the one schema, as
 * src/xds/waypoint-codec.ts does for WaypointConfig. A refusal is AMESH_XDS_INVALID_RESOURCE
 * with `<field path>: <problem>` (the NACK reason).
 */
import { AmeshError } from '../errors/amesh-error.js';
import { describeConfigIssues } from '../l7/config-schema.js';
import { namespaceTelemetrySchema, type NamespaceTelemetry } from '../telemetry/telemetry-config.js';
import { xdsProto } from './proto.js';

export { TELEMETRY_TYPE_URL } from '../telemetry/telemetry-config.js';

const ROOT = 'telemetry';

function validate(value: unknown): NamespaceTelemetry {
  const parsed = namespaceTelemetrySchema.safeParse(value);
  if (!parsed.success) throw new AmeshError('AMESH_XDS_INVALID_RESOURCE', describeConfigIssues(parsed.error, ROOT).join('; '));
  return parsed.data;
}

export function encodeTelemetry(t: NamespaceTelemetry): Uint8Array {
  const valid = validate(t);
  const type = xdsProto().telemetry;
  return type.encode(type.create({ json: JSON.stringify(valid) })).finish();
}

export function decodeTelemetry(bytes: Uint8Array): NamespaceTelemetry {
  const type = xdsProto().telemetry;
  let json: unknown;
  try {
    json = (type.toObject(type.decode(bytes), { defaults: true }) as { json: string }).json;
  } catch (err) {
    throw new AmeshError('AMESH_XDS_INVALID_RESOURCE', `${ROOT}: not a valid amesh.telemetry.v1.Telemetry: ${(err as Error).message}`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(json as string);
  } catch (err) {
    throw new AmeshError('AMESH_XDS_INVALID_RESOURCE', `${ROOT}.json: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return validate(value);
}
