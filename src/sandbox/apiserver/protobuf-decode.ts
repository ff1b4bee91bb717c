/**
 * Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded to the
 * JSON form. kubectl 1.32 sends protobuf — with no fallback to JSON — from its generator
 * commands: `kubectl create namespace|configmap|secret|serviceaccount|deployment|service` and
 * `kubectl expose`. Only the kinds (and fields) those commands produce are described here;
 * every other kind keeps answering 415, and a non-empty field the schema does not know fails
 * the request instead of being dropped silently.
 *
 * Wire format: https://protobuf.dev/programming-guides/encoding/ ; envelope and field numbers:
 * k8s.io/apimachinery runtime.Unknown (magic "k8s\0"), k8s.io/api generated.proto.
 * Go's gogo-protobuf writes every non-pointer field, so zero values (empty strings, 0, false,
 * empty messages) are dropped to match the JSON encoding's omitempty.
 */
import { ApiError } from './types.js';

type FieldKind = 'string' | 'bytes' | 'int' | 'bool' | 'stringMap' | 'bytesMap' | 'intOrString' | 'time' | { message: Schema };
interface Field {
  name: string;
  kind: FieldKind;
  repeated?: boolean;
}
type Schema = Record<number, Field>;

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

const f = (name: string, kind: FieldKind, repeated = false): Field => ({ name, kind, ...(repeated ? { repeated } : {}) });
const msg = (schema: Schema): { message: Schema } => ({ message: schema });

const OWNER_REFERENCE: Schema = { 1: f('kind', 'string'), 3: f('name', 'string'), 4: f('uid', 'string'), 5: f('apiVersion', 'string'), 6: f('controller', 'bool'), 7: f('blockOwnerDeletion', 'bool') };
const OBJECT_META: Schema = {
  1: f('name', 'string'),
  2: f('generateName', 'string'),
  3: f('namespace', 'string'),
  4: f('selfLink', 'string'),
  5: f('uid', 'string'),
  6: f('resourceVersion', 'string'),
  7: f('generation', 'int'),
  8: f('creationTimestamp', 'time'),
  9: f('deletionTimestamp', 'time'),
  10: f('deletionGracePeriodSeconds', 'int'),
  11: f('labels', 'stringMap'),
  12: f('annotations', 'stringMap'),
  13: f('ownerReferences', msg(OWNER_REFERENCE), true),
  14: f('finalizers', 'string', true),
};
const LABEL_SELECTOR: Schema = {
  1: f('matchLabels', 'stringMap'),
  2: f('matchExpressions', msg({ 1: f('key', 'string'), 2: f('operator', 'string'), 3: f('values', 'string', true) }), true),
};
const CONTAINER: Schema = {
  1: f('name', 'string'),
  2: f('image', 'string'),
  3: f('command', 'string', true),
  4: f('args', 'string', true),
  5: f('workingDir', 'string'),
  6: f('ports', msg({ 1: f('name', 'string'), 2: f('hostPort', 'int'), 3: f('containerPort', 'int'), 4: f('protocol', 'string'), 5: f('hostIP', 'string') }), true),
  7: f('env', msg({ 1: f('name', 'string'), 2: f('value', 'string') }), true),
  8: f('resources', msg({})),
  13: f('terminationMessagePath', 'string'),
  14: f('imagePullPolicy', 'string'),
  16: f('stdin', 'bool'),
  17: f('stdinOnce', 'bool'),
  18: f('tty', 'bool'),
  20: f('terminationMessagePolicy', 'string'),
};
const POD_SPEC: Schema = {
  2: f('containers', msg(CONTAINER), true),
  3: f('restartPolicy', 'string'),
  4: f('terminationGracePeriodSeconds', 'int'),
  6: f('dnsPolicy', 'string'),
  7: f('nodeSelector', 'stringMap'),
  8: f('serviceAccountName', 'string'),
  9: f('serviceAccount', 'string'),
  10: f('nodeName', 'string'),
  11: f('hostNetwork', 'bool'),
  12: f('hostPID', 'bool'),
  13: f('hostIPC', 'bool'),
  16: f('hostname', 'string'),
  17: f('subdomain', 'string'),
  19: f('schedulerName', 'string'),
  20: f('initContainers', msg(CONTAINER), true),
  24: f('priorityClassName', 'string'),
};
const DEPLOYMENT: Schema = {
  1: f('metadata', msg(OBJECT_META)),
  2: f(
    'spec',
    msg({
      1: f('replicas', 'int'),
      2: f('selector', msg(LABEL_SELECTOR)),
      3: f('template', msg({ 1: f('metadata', msg(OBJECT_META)), 2: f('spec', msg(POD_SPEC)) })),
      4: f('strategy', msg({ 1: f('type', 'string') })),
      5: f('minReadySeconds', 'int'),
      6: f('revisionHistoryLimit', 'int'),
      7: f('paused', 'bool'),
      9: f('progressDeadlineSeconds', 'int'),
    }),
  ),
  3: f('status', msg({ 1: f('observedGeneration', 'int'), 2: f('replicas', 'int'), 3: f('updatedReplicas', 'int'), 4: f('availableReplicas', 'int'), 5: f('unavailableReplicas', 'int'), 7: f('readyReplicas', 'int') })),
};
const SERVICE: Schema = {
  1: f('metadata', msg(OBJECT_META)),
  2: f(
    'spec',
    msg({
      1: f('ports', msg({ 1: f('name', 'string'), 2: f('protocol', 'string'), 3: f('port', 'int'), 4: f('targetPort', 'intOrString'), 5: f('nodePort', 'int'), 6: f('appProtocol', 'string') }), true),
      2: f('selector', 'stringMap'),
      3: f('clusterIP', 'string'),
      4: f('type', 'string'),
      5: f('externalIPs', 'string', true),
      7: f('sessionAffinity', 'string'),
      8: f('loadBalancerIP', 'string'),
      10: f('externalName', 'string'),
      11: f('externalTrafficPolicy', 'string'),
      12: f('healthCheckNodePort', 'int'),
      13: f('publishNotReadyAddresses', 'bool'),
      18: f('clusterIPs', 'string', true),
    }),
  ),
  3: f('status', msg({ 1: f('loadBalancer', msg({})) })),
};

/** apiVersion/kind → schema of the object. */
const SCHEMAS: Record<string, Schema> = {
  'v1/Namespace': { 1: f('metadata', msg(OBJECT_META)), 2: f('spec', msg({ 1: f('finalizers', 'string', true) })), 3: f('status', msg({ 1: f('phase', 'string') })) },
  'v1/ConfigMap': { 1: f('metadata', msg(OBJECT_META)), 2: f('data', 'stringMap'), 3: f('binaryData', 'bytesMap'), 4: f('immutable', 'bool') },
  'v1/Secret': { 1: f('metadata', msg(OBJECT_META)), 2: f('data', 'bytesMap'), 3: f('type', 'string'), 4: f('stringData', 'stringMap'), 5: f('immutable', 'bool') },
  'v1/ServiceAccount': { 1: f('metadata', msg(OBJECT_META)), 4: f('automountServiceAccountToken', 'bool') },
  'v1/Service': SERVICE,
  'apps/v1/Deployment': DEPLOYMENT,
};

export const PROTOBUF_KINDS = Object.keys(SCHEMAS).map((k) => k.slice(k.lastIndexOf('/') + 1));

function unsupported(message: string): ApiError {
  return new ApiError(415, 'UnsupportedMediaType', `${message}; send the object as JSON instead (kubectl apply -f / create -f)`);
}

interface WireField {
  number: number;
  varint?: bigint;
  bytes?: Buffer;
}

function readVarint(buf: Buffer, offset: number): [bigint, number] {
  let value = 0n;
  let shift = 0n;
  for (let i = offset; i < buf.length && shift < 70n; i++) {
    const byte = buf[i] ?? 0;
    value |= BigInt(byte & 0x7f) << shift;
    shift += 7n;
    if ((byte & 0x80) === 0) return [value, i + 1];
  }
  throw unsupported('malformed protobuf body: a varint runs past the end');
}

function readFields(buf: Buffer): WireField[] {
  const fields: WireField[] = [];
  let offset = 0;
  while (offset < buf.length) {
    const [key, afterKey] = readVarint(buf, offset);
    const number = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) {
      const [value, next] = readVarint(buf, afterKey);
      fields.push({ number, varint: value });
      offset = next;
    } else if (wire === 2) {
      const [length, start] = readVarint(buf, afterKey);
      const end = start + Number(length);
      if (end > buf.length) throw unsupported('malformed protobuf body: a field runs past the end');
      fields.push({ number, bytes: buf.subarray(start, end) });
      offset = end;
    } else if (wire === 1 || wire === 5) {
      offset = afterKey + (wire === 1 ? 8 : 4);
      fields.push({ number });
    } else {
      throw unsupported(`malformed protobuf body: wire type ${wire}`);
    }
  }
  return fields;
}

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === '' || value === 0 || value === false) return true;
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === 'object' && value !== null && Object.keys(value).length === 0;
}

function mapEntry(bytes: Buffer): [string, Buffer] {
  let key = '';
  let value: Buffer = Buffer.alloc(0);
  for (const field of readFields(bytes)) {
    if (field.number === 1 && field.bytes) key = field.bytes.toString('utf8');
    if (field.number === 2 && field.bytes) value = field.bytes;
  }
  return [key, value];
}

function decodeValue(field: Field, wire: WireField, path: string): unknown {
  const bytes = wire.bytes;
  const kind = field.kind;
  if (kind === 'int') return Number(BigInt.asIntN(64, wire.varint ?? 0n));
  if (kind === 'bool') return (wire.varint ?? 0n) !== 0n;
  if (!bytes) throw unsupported(`malformed protobuf body: ${path} has the wrong wire type`);
  switch (kind) {
    case 'string':
      return bytes.toString('utf8');
    case 'bytes':
      return bytes.toString('base64');
    case 'time': {
      const seconds = readFields(bytes).find((w) => w.number === 1)?.varint ?? 0n;
      return seconds === 0n ? undefined : new Date(Number(seconds) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    }
    case 'intOrString': {
      const parts = readFields(bytes);
      const isString = (parts.find((w) => w.number === 1)?.varint ?? 0n) === 1n;
      return isString ? (parts.find((w) => w.number === 3)?.bytes?.toString('utf8') ?? '') : Number(parts.find((w) => w.number === 2)?.varint ?? 0n);
    }
    case 'stringMap':
    case 'bytesMap':
      return undefined; // assembled by the caller (one wire field per entry)
    default:
      return decodeMessage(kind.message, bytes, path);
  }
}

function decodeMessage(schema: Schema, buf: Buffer, path: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const wire of readFields(buf)) {
    const field = schema[wire.number];
    if (!field) {
      const zero = (wire.bytes !== undefined && wire.bytes.length === 0) || wire.varint === 0n;
      if (zero) continue;
      throw unsupported(`the protobuf body sets field ${wire.number} of ${path || 'the object'}, which the sandbox cannot decode`);
    }
    const where = path ? `${path}.${field.name}` : field.name;
    if (field.kind === 'stringMap' || field.kind === 'bytesMap') {
      if (!wire.bytes) continue;
      const [key, value] = mapEntry(wire.bytes);
      const map = (out[field.name] ?? {}) as Record<string, string>;
      map[key] = field.kind === 'stringMap' ? value.toString('utf8') : value.toString('base64');
      out[field.name] = map;
      continue;
    }
    const value = decodeValue(field, wire, where);
    if (field.repeated) {
      // Repeated entries are kept even when empty (an empty string in `args` is meaningful).
      out[field.name] = [...((out[field.name] as unknown[] | undefined) ?? []), value];
    } else if (!isEmpty(value)) {
      out[field.name] = value;
    }
  }
  return out;
}

/** True when the body starts with the Kubernetes protobuf magic number. */
export function isKubeProtobuf(body: Buffer): boolean {
  return body.length >= 4 && body.subarray(0, 4).equals(MAGIC);
}

/** Decodes a `runtime.Unknown`-wrapped object of one of PROTOBUF_KINDS to its JSON form. */
export function decodeKubeProtobuf(body: Buffer): Record<string, unknown> {
  if (!isKubeProtobuf(body)) throw unsupported('the protobuf body does not start with the Kubernetes magic number "k8s\\0"');
  let apiVersion = '';
  let kind = '';
  let raw: Buffer | undefined;
  for (const wire of readFields(body.subarray(4))) {
    if (wire.number === 1 && wire.bytes) {
      for (const meta of readFields(wire.bytes)) {
        if (meta.number === 1 && meta.bytes) apiVersion = meta.bytes.toString('utf8');
        if (meta.number === 2 && meta.bytes) kind = meta.bytes.toString('utf8');
      }
    }
    if (wire.number === 2 && wire.bytes) raw = wire.bytes;
  }
  const schema = SCHEMAS[`${apiVersion}/${kind}`];
  if (!schema) throw unsupported(`protobuf request bodies are supported only for ${PROTOBUF_KINDS.join(', ')} (got ${kind || 'no kind'} ${apiVersion})`);
  return { apiVersion, kind, ...decodeMessage(schema, raw ?? Buffer.alloc(0), '') };
}
