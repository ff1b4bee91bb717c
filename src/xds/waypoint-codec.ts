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
import type { WaypointConfig } from '../l7/config.js';
import { waypointConfigSchema } from '../l7/config-schema.js';
import { jsonEnvelopeCodec } from './json-envelope.js';
import { xdsProto } from './proto.js';

export { WAYPOINT_CONFIG_TYPE_URL } from '../l7/config.js';

const ROOT = 'waypointConfig';

/** The xDS resource name of a waypoint's config: its Gateway's `namespace/name`. */
export function waypointConfigResourceName(c: Pick<WaypointConfig, 'namespace' | 'name'>): string {
  return `${c.namespace}/${c.name}`;
}

const codec = jsonEnvelopeCodec<WaypointConfig>({ type: () => xdsProto().waypointConfig, message: 'amesh.l7.v1.WaypointConfig', schema: waypointConfigSchema, root: ROOT });

export function encodeWaypointConfig(c: WaypointConfig): Uint8Array {
  return codec.encode(c);
}

export function decodeWaypointConfig(bytes: Uint8Array): WaypointConfig {
  return codec.decode(bytes);
}
