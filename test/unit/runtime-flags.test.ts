/**
 * node's own flags (src/config/runtime-flags.ts) must be ones node accepts on its command line:
 * a misspelt or too-new V8 flag stops node at start ("bad option"), i.e. every agent pod would
 * crash-loop. test/unit/dockerfiles.test.ts checks the images' ENTRYPOINTs carry them.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { NODE_AGENT_FLAGS, nodeAgentNodeFlags, nodeFlagsFor, nodeMajor } from '../../src/config/runtime-flags.js';

const run = (flags: readonly string[]) => spawnSync(process.execPath, [...flags, '-e', '0'], { encoding: 'utf8' });

describe('node flags per program', () => {
  it('the running node accepts the agent flags for its version (and refuses an unknown one)', () => {
    const flags = nodeAgentNodeFlags();
    expect(flags).toContain('--single-threaded-gc');
    const accepted = run(flags);
    expect(accepted.stderr).toBe('');
    expect(accepted.status).toBe(0);
    expect(run(['--single-threaded-gcx']).status, 'a misspelt flag fails').not.toBe(0);
  });

  it('leaves out a flag only for the reason it gives: the running node refuses it, or does not need it', () => {
    // Each flag on its own: a kept flag must be accepted; a left-out one must be refused when its
    // reason is `refused`, and accepted when it is `not-needed` (the flag exists on this node).
    const kept = new Set(nodeAgentNodeFlags());
    for (const { flag, before } of NODE_AGENT_FLAGS) {
      const accepted = run([flag]).status === 0;
      const expected = kept.has(flag) || before === 'not-needed';
      expect({ flag, accepted }).toEqual({ flag, accepted: expected });
      if (!kept.has(flag)) expect({ flag, before }, 'a left-out flag names why').not.toEqual({ flag, before: undefined });
    }
  });

  it('picks flags by Node major', () => {
    expect(nodeAgentNodeFlags('20.19.0')).toEqual(['--single-threaded-gc', '--max-semi-space-size=16']);
    expect(nodeAgentNodeFlags('v24.11.1')).toEqual(['--single-threaded-gc', '--max-semi-space-size=16', '--external-memory-accounted-in-global-limit', '--heap-growing-percent=100', '--no-async-context-frame']);
    expect(nodeFlagsFor([{ flag: '--a' }, { flag: '--b', fromNodeMajor: 22 }], 21)).toEqual(['--a']);
    expect(nodeFlagsFor([{ flag: '--a' }, { flag: '--b', fromNodeMajor: 22 }], 22)).toEqual(['--a', '--b']);
    expect(nodeMajor('20.19.0')).toBe(20);
    expect(() => nodeMajor('twenty')).toThrow(/not a Node version/);
  });
});
