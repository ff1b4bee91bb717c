/**
 * The eBPF part of `amesh precheck`, run for real: load the node agent's own capture program
 * (the verifier checks the SCHED_CLS program and its helper calls — bpf_sk_assign,
 * bpf_skc_lookup_tcp), pin its maps on bpffs under a throw-away pin root, and attach it to tc
 * clsact ingress of `lo` — in a NEW network namespace, so nothing on the node is touched.
 *
 * `probeBpf` is the step logic (native binding injected); run as a program (precheck-facts.ts
 * starts `unshare --net node <this file> <object> <pinRoot>`) it prints the steps as JSON. The
 * caller removes the pin root.
 */
import { readdirSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { LoadedBpfObject, NativeBinding } from '../native/types.js';
import { BPF_MAP_NAMES, BPF_PROGRAM_NAME, UNPINNED_MAP_NAMES, encodeRodata } from '../node-agent/capture/bpf-contract.js';
import { TC_HANDLE, TC_PRIORITY } from '../node-agent/capture/ebpf-capture.js';
import type { BpfProbeStep } from './precheck.js';

const message = (err: unknown): string => {
  const e = err as { message?: string; code?: string; syscall?: string };
  return [e.message ?? String(err), e.syscall && !e.message?.includes(e.syscall) ? `(${e.syscall})` : ''].filter(Boolean).join(' ');
};

export function probeBpf(native: NativeBinding, objectPath: string, pinRoot: string, listPins: (dir: string) => string[] = (d) => readdirSync(d)): BpfProbeStep[] {
  const steps: BpfProbeStep[] = [];
  let object: LoadedBpfObject;
  try {
    object = native.loadObject({
      path: objectPath,
      pinRoot,
      rodata: encodeRodata({ captureMark: 0x111, listenerMark: 0x222, outboundPort: 15001, inboundPlaintextPort: 15006, hbonePort: 15008, failOpen: false }),
    });
    steps.push({ step: 'load', ok: true, detail: `programs ${object.programs.map((p) => p.name).join(', ')} verified (tc: bpf_sk_assign, bpf_skc_lookup_tcp; sk_lookup: a sockmap of listeners)` });
  } catch (err) {
    const text = message(err);
    const pinProblem = /pin|bpffs|\/sys\/fs\/bpf/i.test(text) && !/verif|invalid|unknown func/i.test(text);
    steps.push({ step: pinProblem ? 'pin' : 'load', ok: false, detail: text });
    return steps;
  }
  try {
    const pinned = listPins(pinRoot);
    const missing = Object.values(BPF_MAP_NAMES).filter((n) => !UNPINNED_MAP_NAMES.has(n) && !pinned.includes(n));
    steps.push(missing.length ? { step: 'pin', ok: false, detail: `maps not pinned under ${pinRoot}: ${missing.join(', ')}` } : { step: 'pin', ok: true, detail: `${pinned.length} maps pinned on bpffs` });
    if (missing.length) return steps;
    const program = object.programs.find((p) => p.name === BPF_PROGRAM_NAME);
    if (!program) throw new Error('the object has no program');
    const lo = native.ifNameToIndex('lo');
    try {
      native.tcAttachIngress(lo, program.fd, TC_HANDLE, TC_PRIORITY);
      const id = native.tcQueryIngress(lo, TC_HANDLE, TC_PRIORITY);
      steps.push(id ? { step: 'attach', ok: true, detail: 'attached on tc clsact ingress' } : { step: 'attach', ok: false, detail: 'bpf_tc_attach succeeded but bpf_tc_query finds no program' });
    } catch (err) {
      steps.push({ step: 'attach', ok: false, detail: message(err) });
    } finally {
      try {
        native.tcDetachIngress(lo, TC_HANDLE, TC_PRIORITY);
      } catch {
        // the namespace (and its qdisc) goes away with the probe process
      }
    }
  } finally {
    native.closeObject(object.id);
  }
  return steps;
}

async function main(): Promise<void> {
  const [objectPath, pinRoot] = process.argv.slice(2);
  if (!objectPath || !pinRoot) throw new Error('usage: precheck-bpf-probe <object.bpf.o> <pinRoot>');
  const { loadNativeBinding } = await import('../native/index.js');
  let steps: BpfProbeStep[];
  try {
    steps = probeBpf(loadNativeBinding(), objectPath, pinRoot);
  } catch (err) {
    steps = [{ step: 'load', ok: false, detail: message(err) }];
  }
  process.stdout.write(`${JSON.stringify(steps)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
