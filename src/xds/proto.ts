/**
 * Our trimmed copies of Istio's workload API and Envoy's delta xDS messages (proto/, DESIGN §6),
 * loaded once with protobufjs. The proto directory is found from the package root, so the same
 * code works from src/ under vitest and from dist/src/ after a build (proto/ ships beside dist/).
 * google/protobuf/* (Any, Struct, Empty, UInt32Value) come from protobufjs' bundled copies.
 *
 * protobufjs rather than @grpc/proto-loader: the codec needs Type objects to encode the payload
 * of a google.protobuf.Any and to verify oneofs, which proto-loader's plain-object view hides.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';
import { PACKAGE_ROOT } from '../os/package-root.js';

export const XDS_PROTO_DIR = join(PACKAGE_ROOT, 'proto');
export const XDS_PROTO_FILES = [
  'istio/workload/workloadapi.proto',
  'istio/security/authorization.proto',
  'envoy/service/discovery/v3/discovery.proto',
  // Our own type: a waypoint's routes (src/xds/waypoint-codec.ts).
  'amesh/l7/v1/waypoint.proto',
  // Our own type: Telemetry settings per namespace for node agents (src/xds/telemetry-codec.ts).
  'amesh/telemetry/v1/telemetry.proto',
] as const;

export const ADS_SERVICE_NAME = 'envoy.service.discovery.v3.AggregatedDiscoveryService';
export const DELTA_ADS_METHOD = 'DeltaAggregatedResources';
export const DELTA_ADS_PATH = `/${ADS_SERVICE_NAME}/${DELTA_ADS_METHOD}`;

export interface XdsProto {
  root: protobuf.Root;
  address: protobuf.Type;
  workload: protobuf.Type;
  service: protobuf.Type;
  authorization: protobuf.Type;
  waypointConfig: protobuf.Type;
  telemetry: protobuf.Type;
  deltaRequest: protobuf.Type;
  deltaResponse: protobuf.Type;
}

let cached: XdsProto | undefined;

function load(): XdsProto {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    // protobufjs answers google/protobuf/* from its bundled definitions when given the bare name.
    if (target.startsWith('google/protobuf/')) return target;
    const fromRoot = join(XDS_PROTO_DIR, target);
    return existsSync(fromRoot) ? fromRoot : join(dirname(origin), target);
  };
  root.loadSync([...XDS_PROTO_FILES], { keepCase: false });
  root.resolveAll();
  return {
    root,
    address: root.lookupType('istio.workload.Address'),
    workload: root.lookupType('istio.workload.Workload'),
    service: root.lookupType('istio.workload.Service'),
    authorization: root.lookupType('istio.security.Authorization'),
    waypointConfig: root.lookupType('amesh.l7.v1.WaypointConfig'),
    telemetry: root.lookupType('amesh.telemetry.v1.Telemetry'),
    deltaRequest: root.lookupType('envoy.service.discovery.v3.DeltaDiscoveryRequest'),
    deltaResponse: root.lookupType('envoy.service.discovery.v3.DeltaDiscoveryResponse'),
  };
}

/** The loaded message types (parsed on first use, then shared). */
export function xdsProto(): XdsProto {
  cached ??= load();
  return cached;
}
