/**
 * WaypointConfig (src/l7/config.ts) ↔ the bytes of `amesh.l7.v1.WaypointConfig`
 * (proto/amesh/l7/v1/waypoint.proto): a protobuf envelope whose `json` field carries the object.
 *
 * Contract:
 * - Both directions validate with the one schema (src/l7/config-schema.ts): the controller never
 *   publishes a config a waypoint would refuse, and a waypoint refuses anything malformed with
 *   AMESH_XDS_INVALID_RESOURCE and `<field path>: <problem>` (the NACK reason), e.g.
 *   `waypointConfig.services[0].ports[0].routes[1].matches[0].path.value: "(" is not a valid
 *   regular expression`.
 * - Encoding is deterministic for equal input (JSON.stringify keeps the object's key order, and
 *   the translators build objects in a fixed order), so the store's byte hash is a stable version.
 * - Decoding returns the schema's output: unknown fields are refused, not dropped.
 */
import { AmeshError } from '../errors/amesh-error.js';
import type { WaypointConfig } from '../l7/config.js';
import { describeConfigIssues, waypointConfigSchema } from '../l7/config-schema.js';
import { xdsProto } from './proto.js';

export { WAYPOINT_CONFIG_TYPE_URL } from '../l7/config.js';

const ROOT = 'waypointConfig';

/** The xDS resource name of a waypoint's config: its Gateway's `namespace/name`. */
export function waypointConfigResourceName(c: Pick<WaypointConfig, 'namespace' | 'name'>): string {
  return `${c.namespace}/${c.name}`;
}

function validate(value: unknown): WaypointConfig {
  const parsed = waypointConfigSchema.safeParse(value);
  if (!parsed.success) throw new AmeshError('AMESH_XDS_INVALID_RESOURCE', describeConfigIssues(parsed.error, ROOT).join('; '));
  return parsed.data;
}

export function encodeWaypointConfig(c: WaypointConfig): Uint8Array {
  const valid = validate(c);
  const type = xdsProto().waypointConfig;
  return type.encode(type.create({ json: JSON.stringify(valid) })).finish();
}

export function decodeWaypointConfig(bytes: Uint8Array): WaypointConfig {
  const type = xdsProto().waypointConfig;
  let json: unknown;
  try {
    json = (type.toObject(type.decode(bytes), { defaults: true }) as { json: string }).json;
  } catch (err) {
    throw new AmeshError('AMESH_XDS_INVALID_RESOURCE', `${ROOT}: not a valid amesh.l7.v1.WaypointConfig: ${(err as Error).message}`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(json as string);
  } catch (err) {
    throw new AmeshError('AMESH_XDS_INVALID_RESOURCE', `${ROOT}.json: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return validate(value);
}
