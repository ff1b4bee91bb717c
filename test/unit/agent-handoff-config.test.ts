// The hand-off settings and the no-agent path, without sockets: AMESH_HANDOFF_SOCKET parsing,
// and a hand-off request that nobody answers (the fake addon refuses connects) binds fresh.
import { describe, expect, it } from 'vitest';
import { readAgentConfig } from '../../src/config/agent-config.js';
import { createFakeNativeBinding } from '../../src/native/fake.js';
import { DEFAULT_HANDOFF_SOCKET, requestHandoff } from '../../src/node-agent/handoff/handoff.js';
import { silentLogger } from '../../src/telemetry/logger.js';

describe('agent hand-off settings', () => {
  it('defaults to auto and accepts off, an abstract name or an absolute path', () => {
    expect(readAgentConfig({}, 'n1').handoffSocket).toBe('auto');
    expect(readAgentConfig({ AMESH_HANDOFF_SOCKET: 'off' }, 'n1').handoffSocket).toBe('off');
    expect(readAgentConfig({ AMESH_HANDOFF_SOCKET: '@amesh-x' }, 'n1').handoffSocket).toBe('@amesh-x');
    expect(readAgentConfig({ AMESH_HANDOFF_SOCKET: '/run/amesh/handoff.sock' }, 'n1').handoffSocket).toBe('/run/amesh/handoff.sock');
    expect(DEFAULT_HANDOFF_SOCKET).toBe('@amesh-node-handoff');
  });

  it('refuses anything else, naming the variable and the accepted forms', () => {
    for (const bad of ['yes', 'relative.sock', '@', `@${'x'.repeat(120)}`]) {
      expect(() => readAgentConfig({ AMESH_HANDOFF_SOCKET: bad }, 'n1'), bad).toThrow(/AMESH_HANDOFF_SOCKET.*'auto', 'off', '@abstract-name' or an absolute path/s);
    }
  });

  it('AMESH_SUCCESSOR_WAIT_MS (default 10 s) and AMESH_AFTER_HANDOFF (auto|exit|wait)', () => {
    const defaults = readAgentConfig({}, 'n1');
    expect(defaults.successorWaitMs).toBe(10_000);
    expect(defaults.afterHandoff).toBe('auto');
    expect(readAgentConfig({ AMESH_SUCCESSOR_WAIT_MS: '0', AMESH_AFTER_HANDOFF: 'exit' }, 'n1')).toMatchObject({ successorWaitMs: 0, afterHandoff: 'exit' });
    expect(() => readAgentConfig({ AMESH_SUCCESSOR_WAIT_MS: '-1' }, 'n1')).toThrow(/AMESH_SUCCESSOR_WAIT_MS/);
    expect(() => readAgentConfig({ AMESH_AFTER_HANDOFF: 'linger' }, 'n1')).toThrow(/AMESH_AFTER_HANDOFF/);
  });

  it('binds fresh when no agent answers', async () => {
    expect(await requestHandoff(createFakeNativeBinding(), DEFAULT_HANDOFF_SOCKET, silentLogger)).toBeUndefined();
  });
});
