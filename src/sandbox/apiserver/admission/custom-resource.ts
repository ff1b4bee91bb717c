/**
 * Custom resources (CRD-defined kinds, and the Istio and Gateway API kinds the sandbox serves
 * as if their CRDs were installed): the sandbox keeps no OpenAPI schema, so only `spec` being
 * an object is checked, plus the enum fields whose typos silently change mesh security
 * (PeerAuthentication mtls.mode, AuthorizationPolicy action) — real CRD schemas reject those.
 */
import type { KubeObject } from '../types.js';
import { isPlainObject } from '../patch/json-value.js';
import type { FieldErrors } from './field-errors.js';

const MTLS_MODES = ['DISABLE', 'PERMISSIVE', 'STRICT', 'UNSET'] as const;
const AUTHZ_ACTIONS = ['ALLOW', 'AUDIT', 'CUSTOM', 'DENY'] as const;

function checkMtlsMode(mtls: unknown, field: string, errors: FieldErrors): void {
  if (mtls === undefined || mtls === null) return;
  if (!isPlainObject(mtls)) return errors.typeInvalid(field, mtls, 'must be of type object');
  const mode = mtls['mode'];
  if (mode !== undefined && !(MTLS_MODES as readonly unknown[]).includes(mode)) errors.notSupported(`${field}.mode`, mode, MTLS_MODES);
}

export function admitCustomResource(object: KubeObject, errors: FieldErrors): void {
  const spec = object['spec'];
  if (spec === undefined) return;
  if (!isPlainObject(spec)) {
    errors.typeInvalid('spec', spec, 'must be of type object');
    return;
  }
  const group = object.apiVersion.split('/')[0];
  if (group === 'security.istio.io' && object.kind === 'PeerAuthentication') {
    checkMtlsMode(spec['mtls'], 'spec.mtls', errors);
    const portLevel = spec['portLevelMtls'];
    if (isPlainObject(portLevel)) for (const [port, mtls] of Object.entries(portLevel)) checkMtlsMode(mtls, `spec.portLevelMtls[${port}]`, errors);
  }
  if (group === 'security.istio.io' && object.kind === 'AuthorizationPolicy') {
    const action = spec['action'];
    if (action !== undefined && !(AUTHZ_ACTIONS as readonly unknown[]).includes(action)) errors.notSupported('spec.action', action, AUTHZ_ACTIONS);
  }
}
