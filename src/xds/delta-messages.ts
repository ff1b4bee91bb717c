/**
 * Delta ADS on the wire (DESIGN §6): `envoy.service.discovery.v3.AggregatedDiscoveryService/
 * DeltaAggregatedResources`, its request/response messages as plain objects, and the gRPC
 * service definition that (de)serializes them with protobufjs. Shared by the controller's server
 * (src/controller/xds/ads-server.ts) and the node agent's client (delta-client.ts).
 *
 * Decoded messages always carry every field (proto3 defaults filled in), so handlers never test
 * for undefined lists or strings. `google.protobuf.Any` keeps protobufjs' field name `type_url`.
 */
import type * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { ADS_SERVICE_NAME, DELTA_ADS_METHOD, DELTA_ADS_PATH, xdsProto } from './proto.js';

/** google.protobuf.Value as protobufjs' toObject gives it (oneofs on). */
export interface StructValue {
  kind?: string;
  stringValue?: string;
  [other: string]: unknown;
}

export interface NodeMessage {
  id: string;
  cluster: string;
  metadata?: { fields?: Record<string, StructValue> } | null;
}

export interface DeltaDiscoveryRequest {
  node?: NodeMessage | null;
  typeUrl: string;
  resourceNamesSubscribe: string[];
  resourceNamesUnsubscribe: string[];
  initialResourceVersions: Record<string, string>;
  responseNonce: string;
  errorDetail?: { code: number; message: string } | null;
}

export interface ResourceMessage {
  name: string;
  version: string;
  resource?: { type_url: string; value: Uint8Array } | null;
  aliases?: string[];
}

export interface DeltaDiscoveryResponse {
  systemVersionInfo: string;
  resources: ResourceMessage[];
  typeUrl: string;
  nonce: string;
  removedResources: string[];
}

/** google.rpc.Code INVALID_ARGUMENT: what a NACK's error_detail carries. */
export const NACK_CODE = 3;

const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: Number, defaults: true, arrays: true, objects: true, oneofs: true };

function serializer<T extends object>(type: () => protobuf.Type): (value: T) => Buffer {
  return (value) => {
    const t = type();
    const bytes = t.encode(t.fromObject(value as Record<string, unknown>)).finish();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer<T>(type: () => protobuf.Type): (bytes: Buffer) => T {
  return (bytes) => {
    const t = type();
    return t.toObject(t.decode(bytes), TO_OBJECT) as T;
  };
}

export const serializeDeltaRequest = serializer<DeltaDiscoveryRequest>(() => xdsProto().deltaRequest);
export const deserializeDeltaRequest = deserializer<DeltaDiscoveryRequest>(() => xdsProto().deltaRequest);
export const serializeDeltaResponse = serializer<DeltaDiscoveryResponse>(() => xdsProto().deltaResponse);
export const deserializeDeltaResponse = deserializer<DeltaDiscoveryResponse>(() => xdsProto().deltaResponse);

/** The service definition for `server.addService` (and the method for a client's bidi call). */
export function adsServiceDefinition(): grpc.ServiceDefinition {
  return {
    [DELTA_ADS_METHOD]: {
      path: DELTA_ADS_PATH,
      requestStream: true,
      responseStream: true,
      requestSerialize: serializeDeltaRequest,
      requestDeserialize: deserializeDeltaRequest,
      responseSerialize: serializeDeltaResponse,
      responseDeserialize: deserializeDeltaResponse,
      originalName: DELTA_ADS_METHOD,
    },
  } as grpc.ServiceDefinition;
}

export { ADS_SERVICE_NAME, DELTA_ADS_METHOD, DELTA_ADS_PATH };

/** A Struct holding string fields (the Node's metadata). */
export function stringStruct(values: Record<string, string>): { fields: Record<string, StructValue> } {
  return { fields: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, { stringValue: v }])) };
}

/** The string fields of a Node's metadata; other value kinds are left out. */
export function structStrings(struct: NodeMessage['metadata']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(struct?.fields ?? {})) {
    if (typeof value.stringValue === 'string' && (value.kind === undefined || value.kind === 'stringValue')) out[key] = value.stringValue;
  }
  return out;
}
