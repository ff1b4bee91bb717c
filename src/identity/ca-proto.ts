/**
 * The wire contract of Istio's CA (`istio.v1.auth.IstioCertificateService`), shared by the
 * controller's CA server and the node agent's CA client. Loaded from proto/istio/v1/auth/ca.proto
 * with field names in camelCase (`validityDuration`, `certChain`) and int64 as JS numbers.
 */
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PACKAGE_ROOT } from '../os/package-root.js';

export const CA_PROTO_FILE = join(PACKAGE_ROOT, 'proto', 'istio', 'v1', 'auth', 'ca.proto');
export const CA_SERVICE_NAME = 'istio.v1.auth.IstioCertificateService';
export const CREATE_CERTIFICATE_PATH = `/${CA_SERVICE_NAME}/CreateCertificate`;
/** Istio's metadata key for a node agent asking on behalf of a local pod. */
export const IMPERSONATED_IDENTITY = 'ImpersonatedIdentity';
/** Istio's CA port (gRPC over TLS). */
export const CA_PORT = 15012;
/** Largest request the CA accepts (a P-256 CSR is well under 1 KiB). */
export const CA_MAX_REQUEST_BYTES = 64 * 1024;

/** google.protobuf.Struct as proto-loader decodes it (oneofs: true). */
export interface StructValue {
  fields?: Record<string, { stringValue?: string; kind?: string; [other: string]: unknown }>;
}

export interface IstioCertificateRequest {
  csr: string;
  /** Seconds; 0 = the CA's default. */
  validityDuration: number;
  metadata?: StructValue | null;
}

export interface IstioCertificateResponse {
  /** PEM, leaf first, root last. */
  certChain: string[];
}

let cached: grpc.ServiceDefinition | undefined;

/** The service definition for `server.addService` and `makeGenericClientConstructor`. */
export function caServiceDefinition(): grpc.ServiceDefinition {
  if (cached) return cached;
  const packageDefinition = protoLoader.loadSync(CA_PROTO_FILE, { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true });
  const service = packageDefinition[CA_SERVICE_NAME];
  if (!service || !('CreateCertificate' in service)) throw new Error(`${CA_PROTO_FILE} does not define ${CA_SERVICE_NAME}`);
  cached = service as grpc.ServiceDefinition;
  return cached;
}

/** A Struct holding string fields, as the request's `metadata`. */
export function stringStruct(values: Record<string, string>): StructValue {
  return { fields: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, { stringValue: v, kind: 'stringValue' }])) };
}

/** A string field of a request Struct, or undefined when absent or not a string. */
export function structString(struct: StructValue | null | undefined, key: string): string | undefined {
  const value = struct?.fields?.[key];
  return typeof value?.stringValue === 'string' && (value.kind === undefined || value.kind === 'stringValue') ? value.stringValue : undefined;
}
