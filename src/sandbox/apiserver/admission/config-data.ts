/**
 * ConfigMaps and Secrets: keys valid as file names, no key in both data maps, and for Secrets
 * the `stringData` convenience folded into base64 `data` (it is write-only, as in Kubernetes)
 * and `type` defaulting to Opaque.
 */
import type { KubeObject } from '../types.js';
import { isPlainObject } from '../patch/json-value.js';
import type { FieldErrors } from './field-errors.js';
import { configMapKey } from './names.js';

/** 1 MiB, etcd's practical object limit that kube-apiserver enforces for both kinds. */
const MAX_TOTAL_BYTES = 1024 * 1024;
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function validateKeys(map: unknown, field: string, errors: FieldErrors, checkValue: (key: string, value: unknown) => void): string[] {
  if (map === undefined || map === null) return [];
  if (!isPlainObject(map)) {
    errors.typeInvalid(field, map, 'must be a map of keys to values');
    return [];
  }
  for (const [key, value] of Object.entries(map)) {
    for (const message of configMapKey(key)) errors.invalid(`${field}[${key}]`, key, message);
    checkValue(key, value);
  }
  return Object.keys(map);
}

export function admitConfigMap(configMap: KubeObject, errors: FieldErrors): void {
  let total = 0;
  const data = validateKeys(configMap['data'], 'data', errors, (key, value) => {
    if (typeof value !== 'string') errors.typeInvalid(`data[${key}]`, value, 'must be a string');
    else total += value.length;
  });
  const binary = validateKeys(configMap['binaryData'], 'binaryData', errors, (key, value) => {
    if (typeof value !== 'string' || !BASE64_RE.test(value)) errors.typeInvalid(`binaryData[${key}]`, typeof value === 'string' ? '<binary>' : value, 'must be base64-encoded');
    else total += value.length;
  });
  for (const key of data) if (binary.includes(key)) errors.invalid(`data[${key}]`, key, 'duplicate of key present in binaryData');
  if (total > MAX_TOTAL_BYTES) errors.invalid('data', `${total} bytes`, `ConfigMap data must be at most ${MAX_TOTAL_BYTES} bytes in total`);
}

export function admitSecret(secret: KubeObject, errors: FieldErrors): void {
  secret['type'] ??= 'Opaque';
  const stringData = secret['stringData'];
  if (stringData !== undefined) {
    validateKeys(stringData, 'stringData', errors, (key, value) => {
      if (typeof value !== 'string') errors.typeInvalid(`stringData[${key}]`, value, 'must be a string');
    });
    if (isPlainObject(stringData) && errors.empty) {
      const data = isPlainObject(secret['data']) ? secret['data'] : {};
      for (const [key, value] of Object.entries(stringData)) data[key] = Buffer.from(String(value), 'utf8').toString('base64');
      secret['data'] = data;
    }
    delete secret['stringData'];
  }
  let total = 0;
  const keys = validateKeys(secret['data'], 'data', errors, (key, value) => {
    // Values travel as base64 of arbitrary bytes; the message never echoes secret material.
    if (typeof value !== 'string' || !BASE64_RE.test(value)) errors.typeInvalid(`data[${key}]`, '<secret contents redacted>', 'must be base64-encoded');
    else total += (value.length * 3) / 4;
  });
  if (total > MAX_TOTAL_BYTES) errors.invalid('data', `${total} bytes`, `Secret data must be at most ${MAX_TOTAL_BYTES} bytes in total`);
  if (secret['type'] === 'kubernetes.io/tls') {
    for (const key of ['tls.crt', 'tls.key']) if (!keys.includes(key)) errors.required(`data[${key}]`);
  }
  if (secret['type'] === 'kubernetes.io/service-account-token' && !secret.metadata.annotations?.['kubernetes.io/service-account.name']) {
    errors.required('metadata.annotations[kubernetes.io/service-account.name]');
  }
}
