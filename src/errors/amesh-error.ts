/**
 * One error class per failure family, each with a stable `code` (like undici's UND_ERR_*), a
 * `cause` chain and an optional operator hint. Callers branch on `code`, never on message text.
 */
export type ErrorCode =
  | 'AMESH_CONFIG_INVALID'
  | 'AMESH_LOCAL_CONFIG_INVALID'
  | 'AMESH_XDS_INVALID_RESOURCE'
  | 'AMESH_NATIVE_UNAVAILABLE'
  | 'AMESH_NATIVE_CALL_FAILED'
  | 'AMESH_BPF_UNAVAILABLE'
  | 'AMESH_CAPTURE_FAILED'
  | 'AMESH_COMMAND_FAILED'
  | 'AMESH_CERT_FAILED'
  | 'AMESH_CSR_INVALID'
  | 'AMESH_HBONE_TLS_FAILED'
  | 'AMESH_IDENTITY_INVALID'
  | 'AMESH_HBONE_CONNECT_FAILED'
  | 'AMESH_HBONE_POOL_OVERLOADED'
  | 'AMESH_HBONE_REFUSED'
  | 'AMESH_HBONE_PEER_REJECTED'
  | 'AMESH_UPSTREAM_CONNECT_FAILED'
  | 'AMESH_POLICY_DENIED'
  | 'AMESH_UNKNOWN_WORKLOAD'
  | 'AMESH_LOOP_DETECTED'
  | 'AMESH_PORT_IN_USE'
  | 'AMESH_SHUTTING_DOWN'
  | 'AMESH_SANDBOX_FAILED'
  | 'AMESH_SANDBOX_NOT_RUNNING'
  | 'AMESH_SNAPSHOT_INVALID'
  | 'AMESH_SNAPSHOT_FAILED'
  // Node agent → mesh CA (IstioCertificateService), src/identity/ca-client.ts.
  | 'AMESH_CA_UNAVAILABLE'
  | 'AMESH_CA_REFUSED'
  | 'AMESH_CA_FAILED'
  | 'AMESH_CA_RESPONSE_INVALID'
  | 'AMESH_CA_CREDENTIALS_UNREADABLE';

export interface AmeshErrorOptions {
  cause?: unknown;
  /** What the operator can do about it, shown after the message. */
  hint?: string;
}

export class AmeshError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: AmeshErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AmeshError';
    this.code = code;
    this.hint = options.hint;
  }

  /** Message plus hint, for CLI output. */
  describe(): string {
    return this.hint ? `${this.message}\n  hint: ${this.hint}` : this.message;
  }
}

export function isAmeshError(err: unknown, code?: ErrorCode): err is AmeshError {
  return err instanceof AmeshError && (code === undefined || err.code === code);
}

/** Render any thrown value with its cause chain, one line per level. */
export function describeError(err: unknown): string {
  const lines: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    if (current instanceof AmeshError) lines.push(`${depth ? 'caused by: ' : ''}${current.describe()}`);
    else if (current instanceof Error) lines.push(`${depth ? 'caused by: ' : ''}${current.message}`);
    else lines.push(`${depth ? 'caused by: ' : ''}${String(current)}`);
    current = current instanceof Error ? current.cause : undefined;
  }
  return lines.join('\n');
}
