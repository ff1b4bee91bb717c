/**
 * Options the inspect commands share: -o short|json|yaml, --kubeconfig, --dir.
 */
import { stringify } from 'yaml';
import { AmeshError } from '../../errors/amesh-error.js';

export const OUTPUT_FORMATS = ['short', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function parseOutput(value: string, allowed: readonly OutputFormat[] = OUTPUT_FORMATS): OutputFormat {
  if ((allowed as readonly string[]).includes(value)) return value as OutputFormat;
  throw new AmeshError('AMESH_CONFIG_INVALID', `-o ${value}: expected one of ${allowed.join(', ')}`);
}

/** json / yaml text of `data` (not for short). */
export function structuredText(output: Exclude<OutputFormat, 'short'>, data: unknown): string {
  return output === 'json' ? `${JSON.stringify(data, null, 2)}\n` : stringify(data);
}

export const KUBE_OPTIONS_HELP = {
  kubeconfig: 'kubeconfig to use (default: in-cluster, else $KUBECONFIG or ~/.kube/config, else the running sandbox)',
  dir: 'sandbox state directory: inspect that sandbox (default: detected from the kubeconfig)',
};
