// The kernel/userspace contract is written once in bpf/lib/capture.h (STYLE §9); this test
// parses the header (and the knobs of capture.bpf.c) and fails when the TypeScript mirror in
// src/node-agent/capture/bpf-contract.ts drifts from it.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ADDRESS_KEY_SIZE,
  BPF_MAP_NAMES,
  BPF_PROGRAM_NAME,
  DEFAULT_CAPTURE_MARK,
  DEFAULT_LISTENER_MARK,
  DEFAULT_PORTS,
  EXEMPT_MAX_ENTRIES,
  FLOWS_MAX_ENTRIES,
  FLOW_KEY_SIZE,
  LISTENERS_MAX_ENTRIES,
  LISTENER_KINDS,
  LPM_KEY_SIZE,
  MAP_VALUE_SIZE,
  PODS_MAX_ENTRIES,
  POD_FLAG_ENROLLED,
  REASON,
  REASON_NAMES,
  RODATA_LAYOUT,
  SK_LOOKUP_PROGRAM_NAME,
  bpfObjectPath,
  decodeAddressKey,
  decodeLpmKey,
  encodeAddressKey,
  encodeFlowKey,
  encodeLpmKey,
  encodeRodata,
  listenerKey,
  packageRoot,
} from '../../src/node-agent/capture/bpf-contract.js';

const root = packageRoot();
const header = readFileSync(path.join(root, 'bpf/lib/capture.h'), 'utf8');
const program = readFileSync(path.join(root, 'bpf/capture.bpf.c'), 'utf8');
const twSynProgram = readFileSync(path.join(root, 'bpf/tw-syn.bpf.c'), 'utf8');
const allBpfSource = [header, program, twSynProgram, ...['maps.h', 'packet.h'].map((f) => safeRead(path.join(root, 'bpf/lib', f)))].join('\n');

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Strip comments so commented-out text never counts. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
}

function defines(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of code(text).matchAll(/^\s*#define\s+(\w+)\s+(.+?)\s*$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

const headerDefines = defines(header);

function numberDefine(name: string): number {
  const raw = headerDefines.get(name);
  if (raw === undefined) throw new Error(`capture.h has no #define ${name}`);
  const m = /^\(?\s*(0x[0-9a-f]+|\d+)U?\s*(?:<<\s*(\d+))?\s*\)?$/i.exec(raw);
  if (!m) throw new Error(`cannot parse #define ${name} ${raw}`);
  return Number(m[1]) * 2 ** Number(m[2] ?? 0);
}

function stringDefine(name: string): string {
  const raw = headerDefines.get(name);
  const m = raw && /^"([^"]*)"$/.exec(raw);
  if (!m) throw new Error(`capture.h has no string #define ${name}`);
  return m[1]!;
}

function reasonEnum(): Map<string, number> {
  const body = /enum\s+amesh_reason\s*\{([\s\S]*?)\};/.exec(code(header))?.[1];
  if (!body) throw new Error('capture.h has no enum amesh_reason');
  const out = new Map<string, number>();
  for (const entry of body.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^AMESH_REASON_(\w+)\s*=\s*(\d+)$/.exec(entry);
    if (!m) throw new Error(`enum amesh_reason entry without an explicit value: ${entry}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

const C_SIZES: Record<string, number> = { __u8: 1, __u16: 2, __u32: 4, __u64: 8, __be16: 2, __be32: 4 };

/** sizeof a header struct made of fixed-size scalar and array fields (no padding surprises). */
function structSize(name: string): number {
  const body = new RegExp(`struct\\s+${name}\\s*\\{([\\s\\S]*?)\\};`).exec(code(header))?.[1];
  if (!body) throw new Error(`capture.h has no struct ${name}`);
  let size = 0;
  let align = 1;
  for (const field of body.split(';').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\w+)\s+\w+(?:\[(\w+)\])?$/.exec(field);
    if (!m) throw new Error(`cannot parse field "${field}" of struct ${name}`);
    const scalar = C_SIZES[m[1]!];
    if (!scalar) throw new Error(`unknown type ${m[1]} in struct ${name}`);
    const count = m[2] === undefined ? 1 : /^\d+$/.test(m[2]) ? Number(m[2]) : numberDefine(m[2]);
    size = Math.ceil(size / scalar) * scalar + scalar * count;
    align = Math.max(align, scalar);
  }
  return Math.ceil(size / align) * align;
}

describe('bpf/lib/capture.h ↔ bpf-contract.ts', () => {
  it('names the program and the maps the same way', () => {
    expect(stringDefine('AMESH_PROGRAM_NAME')).toBe(BPF_PROGRAM_NAME);
    expect({
      pods: stringDefine('AMESH_MAP_PODS_NAME'),
      exempt: stringDefine('AMESH_MAP_EXEMPT_NAME'),
      reasons: stringDefine('AMESH_MAP_REASONS_NAME'),
      flows: stringDefine('AMESH_MAP_FLOWS_NAME'),
      listeners: stringDefine('AMESH_MAP_LISTENERS_NAME'),
    }).toEqual(BPF_MAP_NAMES);
    expect(stringDefine('AMESH_SK_LOOKUP_PROGRAM_NAME')).toBe(SK_LOOKUP_PROGRAM_NAME);
  });

  it('keys amesh_listeners the same way', () => {
    expect({
      outbound: numberDefine('AMESH_LISTENER_OUTBOUND'),
      'inbound-plaintext': numberDefine('AMESH_LISTENER_INBOUND_PLAINTEXT'),
      hbone: numberDefine('AMESH_LISTENER_INBOUND_HBONE'),
    }).toEqual(LISTENER_KINDS);
    expect(numberDefine('AMESH_LISTENERS_MAX_ENTRIES')).toBe(LISTENERS_MAX_ENTRIES);
    expect(listenerKey('hbone', 6)).toBe(5);
    expect(Math.max(...(['outbound', 'inbound-plaintext', 'hbone'] as const).flatMap((k) => [listenerKey(k, 4), listenerKey(k, 6)]))).toBe(LISTENERS_MAX_ENTRIES - 1);
  });

  it('the program source defines exactly those maps and that program', () => {
    const src = code(allBpfSource);
    for (const name of Object.values(BPF_MAP_NAMES)) expect(src).toMatch(new RegExp(`\\}\\s*${name}\\s+SEC\\("\\.maps"\\)`));
    expect([...src.matchAll(/\}\s*(\w+)\s+SEC\("\.maps"\)/g)].map((m) => m[1]).sort()).toEqual(Object.values(BPF_MAP_NAMES).sort());
    expect(src).toMatch(new RegExp(`SEC\\("tc"\\)\\s*int\\s+${BPF_PROGRAM_NAME}\\s*\\(`));
    expect(src).toMatch(new RegExp(`SEC\\("sk_lookup"\\)\\s*int\\s+${SK_LOOKUP_PROGRAM_NAME}\\s*\\(`));
  });

  it('one source per attach point, every one of them built and linked into the object', () => {
    expect([...code(program).matchAll(/SEC\("(tc|sk_lookup)"\)/g)].map((m) => m[1])).toEqual(['tc']);
    expect([...code(twSynProgram).matchAll(/SEC\("(tc|sk_lookup)"\)/g)].map((m) => m[1])).toEqual(['sk_lookup']);
    const sources = readdirSync(path.join(root, 'bpf')).filter((f) => f.endsWith('.bpf.c'));
    const build = readFileSync(path.join(root, 'scripts/build-bpf.sh'), 'utf8');
    const listed = /^sources=\(([^)]*)\)/m.exec(build)?.[1]?.split(/\s+/).filter(Boolean) ?? [];
    expect(listed.map((f) => path.basename(f)).sort()).toEqual(sources.sort());
    // Every map is weak, so the linker merges the copies each source includes (maps.h).
    expect([...code(allBpfSource).matchAll(/\}\s*(\w+)\s+SEC\("\.maps"\)\s*__weak\s*;/g)].map((m) => m[1]).sort()).toEqual(Object.values(BPF_MAP_NAMES).sort());
  });

  it('agrees on sizes, limits, flags and defaults', () => {
    expect(numberDefine('AMESH_ADDR_SIZE')).toBe(ADDRESS_KEY_SIZE);
    expect(structSize('amesh_pod_key')).toBe(ADDRESS_KEY_SIZE);
    expect(structSize('amesh_lpm_key')).toBe(LPM_KEY_SIZE);
    expect(structSize('amesh_pod_value')).toBe(MAP_VALUE_SIZE);
    expect(structSize('amesh_exempt_value')).toBe(MAP_VALUE_SIZE);
    expect(numberDefine('AMESH_PODS_MAX_ENTRIES')).toBe(PODS_MAX_ENTRIES);
    expect(numberDefine('AMESH_EXEMPT_MAX_ENTRIES')).toBe(EXEMPT_MAX_ENTRIES);
    expect(numberDefine('AMESH_FLOWS_MAX_ENTRIES')).toBe(FLOWS_MAX_ENTRIES);
    expect(structSize('amesh_flow_key')).toBe(FLOW_KEY_SIZE);
    expect(structSize('amesh_flow_value')).toBe(MAP_VALUE_SIZE);
    expect(numberDefine('AMESH_POD_FLAG_ENROLLED')).toBe(POD_FLAG_ENROLLED);
    expect(numberDefine('AMESH_DEFAULT_CAPTURE_MARK')).toBe(DEFAULT_CAPTURE_MARK);
    expect(numberDefine('AMESH_DEFAULT_LISTENER_MARK')).toBe(DEFAULT_LISTENER_MARK);
    expect({
      outbound: numberDefine('AMESH_DEFAULT_OUTBOUND_PORT'),
      inboundPlaintext: numberDefine('AMESH_DEFAULT_INBOUND_PLAINTEXT_PORT'),
      hbone: numberDefine('AMESH_DEFAULT_HBONE_PORT'),
    }).toEqual(DEFAULT_PORTS);
  });

  it('has the same reason codes, with explicit values', () => {
    const fromHeader = Object.fromEntries(reasonEnum());
    expect(fromHeader).toEqual(REASON);
    // REASON_NAMES covers every countable reason, and only those.
    const countable = Object.entries(REASON).filter(([n]) => n !== 'NONE' && n !== 'MAX');
    expect(REASON_NAMES).toEqual(Object.fromEntries(countable.map(([n, c]) => [c, n])));
    expect(new Set(Object.values(REASON)).size).toBe(Object.keys(REASON).length);
  });

  it('the const volatile knobs of capture.bpf.c match RODATA_LAYOUT by name and size', () => {
    const knobs = Object.fromEntries(
      [...code(program).matchAll(/const\s+volatile\s+(\w+)\s+(\w+)\s*=/g)].map((m) => {
        const size = C_SIZES[m[1]!];
        if (!size) throw new Error(`unknown knob type ${m[1]}`);
        return [m[2]!, size];
      }),
    );
    expect(knobs).toEqual(RODATA_LAYOUT);
    expect(Object.keys(encodeRodata({ captureMark: 1, listenerMark: 2, outboundPort: 3, inboundPlaintextPort: 4, hbonePort: 5, failOpen: true })).sort()).toEqual(
      Object.keys(RODATA_LAYOUT).sort(),
    );
  });

  it('the parser itself notices drift (guards against a vacuous pass)', () => {
    expect(() => structSize('amesh_no_such_struct')).toThrow();
    expect(reasonEnum().size).toBeGreaterThan(10);
  });
});

describe('key encoding', () => {
  it.each([
    ['10.1.2.3', '00000000000000000000ffff0a010203'],
    ['0.0.0.0', '00000000000000000000ffff00000000'],
    ['fd00::1', 'fd000000000000000000000000000001'],
    ['::1', '00000000000000000000000000000001'],
    ['2001:db8:0:0:1::2', '20010db8000000000001000000000002'],
    ['::ffff:10.0.0.1', '00000000000000000000ffff0a000001'],
    ['fe80::a:b:c:d', 'fe80000000000000000a000b000c000d'],
  ])('encodeAddressKey(%s)', (ip, hex) => {
    expect(encodeAddressKey(ip).toString('hex')).toBe(hex);
  });

  it.each([
    ['10.1.2.3', '10.1.2.3'],
    ['fd00::1', 'fd00::1'],
    ['2001:db8:0:0:1::2', '2001:db8::1:0:0:2'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['::', '::'],
  ])('decodeAddressKey round-trips %s as %s', (ip, text) => {
    expect(decodeAddressKey(encodeAddressKey(ip))).toBe(text);
  });

  it('rejects what is not an address', () => {
    expect(() => encodeAddressKey('10.0.0')).toThrow(TypeError);
    expect(() => encodeAddressKey('pod-a')).toThrow(TypeError);
    expect(() => decodeAddressKey(Buffer.alloc(4))).toThrow(RangeError);
  });

  it.each([
    ['10.0.0.0/8', 104, '10.0.0.0/8'],
    ['192.168.1.7', 128, '192.168.1.7/32'],
    ['169.254.0.0/16', 112, '169.254.0.0/16'],
    ['fe80::/10', 10, 'fe80::/10'],
    ['fd00::5/128', 128, 'fd00::5/128'],
    ['0.0.0.0/0', 96, '0.0.0.0/0'],
  ])('encodeLpmKey(%s) has prefixlen %d', (cidr, prefixlen, back) => {
    const key = encodeLpmKey(cidr);
    expect(key.length).toBe(LPM_KEY_SIZE);
    expect(key.readUInt32LE(0)).toBe(prefixlen);
    expect(decodeLpmKey(key)).toBe(back);
  });

  it('encodeFlowKey lays out source, destination, ports in network order', () => {
    const key = encodeFlowKey({ ip: '10.0.0.5', port: 40000 }, { ip: '10.96.0.20', port: 80 });
    expect(key.length).toBe(FLOW_KEY_SIZE);
    expect(decodeAddressKey(key.subarray(0, 16))).toBe('10.0.0.5');
    expect(decodeAddressKey(key.subarray(16, 32))).toBe('10.96.0.20');
    expect(key.subarray(32).toString('hex')).toBe('9c400050');
    expect(decodeAddressKey(encodeFlowKey({ ip: 'fd00::5', port: 1 }, { ip: 'fd00:1::9', port: 2 }).subarray(16, 32))).toBe('fd00:1::9');
    expect(() => encodeFlowKey({ ip: '10.0.0.5', port: 1 }, { ip: 'fd00::9', port: 2 })).toThrow(TypeError);
    expect(() => encodeFlowKey({ ip: '10.0.0.5', port: 65536 }, { ip: '10.0.0.9', port: 2 })).toThrow(RangeError);
  });

  it('rejects bad prefixes', () => {
    expect(() => encodeLpmKey('10.0.0.0/33')).toThrow(TypeError);
    expect(() => encodeLpmKey('fd00::/129')).toThrow(TypeError);
    expect(() => encodeLpmKey('10.0.0.0/x')).toThrow(TypeError);
    expect(() => encodeLpmKey('nope/8')).toThrow(TypeError);
  });

  it('encodeRodata writes little-endian values of the right sizes', () => {
    const r = encodeRodata({ captureMark: 0x111, listenerMark: 0x539, outboundPort: 15001, inboundPlaintextPort: 15006, hbonePort: 15008, failOpen: false });
    expect(r.capture_mark!.toString('hex')).toBe('11010000');
    expect(r.listener_mark!.toString('hex')).toBe('39050000');
    expect(r.outbound_port!.readUInt16LE(0)).toBe(15001);
    expect(r.hbone_port!.length).toBe(2);
    expect(r.fail_open!.toString('hex')).toBe('00');
    expect(() => encodeRodata({ captureMark: -1, listenerMark: 1, outboundPort: 1, inboundPlaintextPort: 1, hbonePort: 1, failOpen: false })).toThrow(RangeError);
    expect(() => encodeRodata({ captureMark: 1, listenerMark: 1, outboundPort: 70000, inboundPlaintextPort: 1, hbonePort: 1, failOpen: false })).toThrow(RangeError);
  });

  it('bpfObjectPath points into the package', () => {
    expect(path.isAbsolute(bpfObjectPath())).toBe(true);
    expect(bpfObjectPath()).toBe(path.join(root, 'bpf/build/capture.bpf.o'));
  });
});
