/**
 * Collects field errors and turns them into the 422 kube-apiserver sends, in its words:
 * `Deployment.apps "web" is invalid: spec.selector: Required value`, or with several errors
 * `... is invalid: [a: ..., b: ...]`. Each becomes a `details.causes[]` entry with the field
 * path and a `FieldValue*` reason, which kubectl and client libraries surface.
 * https://github.com/kubernetes/apimachinery/blob/master/pkg/util/validation/field/errors.go
 */
import { ApiError } from '../types.js';

export interface FieldCause {
  field: string;
  message: string;
  reason: 'FieldValueRequired' | 'FieldValueInvalid' | 'FieldValueNotSupported' | 'FieldValueDuplicate' | 'FieldValueForbidden' | 'FieldValueNotFound' | 'FieldValueTypeInvalid';
}

/** Values print like Go's field errors: strings quoted, numbers bare, objects as JSON. */
function show(value: unknown): string {
  return value === undefined ? 'null' : JSON.stringify(value);
}

export class FieldErrors {
  readonly causes: FieldCause[] = [];

  required(field: string, detail?: string): void {
    this.causes.push({ field, reason: 'FieldValueRequired', message: detail ? `Required value: ${detail}` : 'Required value' });
  }
  invalid(field: string, value: unknown, detail: string): void {
    this.causes.push({ field, reason: 'FieldValueInvalid', message: `Invalid value: ${show(value)}: ${detail}` });
  }
  notSupported(field: string, value: unknown, supported: readonly string[]): void {
    this.causes.push({ field, reason: 'FieldValueNotSupported', message: `Unsupported value: ${show(value)}: supported values: ${supported.map((s) => JSON.stringify(s)).join(', ')}` });
  }
  duplicate(field: string, value: unknown): void {
    this.causes.push({ field, reason: 'FieldValueDuplicate', message: `Duplicate value: ${show(value)}` });
  }
  forbidden(field: string, detail: string): void {
    this.causes.push({ field, reason: 'FieldValueForbidden', message: `Forbidden: ${detail}` });
  }
  notFound(field: string, value: unknown): void {
    this.causes.push({ field, reason: 'FieldValueNotFound', message: `Not found: ${show(value)}` });
  }
  typeInvalid(field: string, value: unknown, detail: string): void {
    this.causes.push({ field, reason: 'FieldValueTypeInvalid', message: `Invalid value: ${show(value)}: ${detail}` });
  }

  get empty(): boolean {
    return this.causes.length === 0;
  }

  /** Throws the 422 for `Kind.group "name"` when any error was collected. */
  throwIfAny(type: { kind: string; group: string }, name: string): void {
    if (this.empty) return;
    const qualifiedKind = type.group ? `${type.kind}.${type.group}` : type.kind;
    const lines = this.causes.map((c) => `${c.field}: ${c.message}`);
    const text = lines.length === 1 ? (lines[0] as string) : `[${lines.join(', ')}]`;
    throw new ApiError(422, 'Invalid', `${qualifiedKind} "${name}" is invalid: ${text}`, {
      name,
      group: type.group,
      kind: type.kind,
      causes: this.causes.map((c) => ({ reason: c.reason, message: c.message, field: c.field })),
    });
  }
}
