/** ObjectMeta checks every kind shares (apimachinery's ValidateObjectMeta). */
import type { ObjectMeta } from '../types.js';
import type { FieldErrors } from './field-errors.js';
import { labelValue, qualifiedName } from './names.js';

/** 256 KiB, kube-apiserver's limit on all annotations of one object together. */
const TOTAL_ANNOTATION_BYTES = 256 * 1024;

export type NameRule = (name: string) => string[];

export function validateLabels(labels: unknown, field: string, errors: FieldErrors): void {
  if (labels === undefined || labels === null) return;
  if (typeof labels !== 'object' || Array.isArray(labels)) {
    errors.typeInvalid(field, labels, 'must be a map of string keys to string values');
    return;
  }
  for (const [key, value] of Object.entries(labels)) {
    for (const message of qualifiedName(key)) errors.invalid(field, key, message);
    if (typeof value !== 'string') errors.typeInvalid(`${field}.${key}`, value, 'must be a string');
    else for (const message of labelValue(value)) errors.invalid(field, value, message);
  }
}

export function validateObjectMeta(meta: ObjectMeta | undefined, nameRule: NameRule, errors: FieldErrors): void {
  if (!meta || typeof meta !== 'object') {
    errors.required('metadata');
    return;
  }
  if (!meta.name) {
    if (!meta.generateName) errors.required('metadata.name', 'name or generateName is required');
  } else {
    for (const message of nameRule(meta.name)) errors.invalid('metadata.name', meta.name, message);
  }
  validateLabels(meta.labels, 'metadata.labels', errors);
  if (meta.annotations !== undefined) {
    if (typeof meta.annotations !== 'object' || meta.annotations === null || Array.isArray(meta.annotations)) {
      errors.typeInvalid('metadata.annotations', meta.annotations, 'must be a map of string keys to string values');
    } else {
      let total = 0;
      for (const [key, value] of Object.entries(meta.annotations)) {
        for (const message of qualifiedName(key.toLowerCase())) errors.invalid('metadata.annotations', key, message);
        if (typeof value !== 'string') errors.typeInvalid(`metadata.annotations.${key}`, value, 'must be a string');
        total += key.length + String(value).length;
      }
      if (total > TOTAL_ANNOTATION_BYTES) errors.invalid('metadata.annotations', `${total} bytes`, `must have at most ${TOTAL_ANNOTATION_BYTES} bytes`);
    }
  }
  (meta.ownerReferences ?? []).forEach((ref, i) => {
    const field = `metadata.ownerReferences[${i}]`;
    if (!ref.apiVersion) errors.invalid(`${field}.apiVersion`, ref.apiVersion ?? '', 'version must not be empty');
    if (!ref.kind) errors.invalid(`${field}.kind`, ref.kind ?? '', 'kind must not be empty');
    if (!ref.name) errors.invalid(`${field}.name`, ref.name ?? '', 'name must not be empty');
    if (!ref.uid) errors.invalid(`${field}.uid`, ref.uid ?? '', 'uid must not be empty');
  });
  if ((meta.ownerReferences ?? []).filter((ref) => ref.controller).length > 1) {
    errors.invalid('metadata.ownerReferences', meta.ownerReferences, 'Only one reference can have Controller set to true');
  }
  (meta.finalizers ?? []).forEach((finalizer, i) => {
    for (const message of qualifiedName(finalizer)) errors.invalid(`metadata.finalizers[${i}]`, finalizer, message);
  });
}
