// amesh/otlp-receiver in the sandbox's image catalog: it runs `amesh image otlp-receiver`
// (src/sandbox/images/otlp-receiver.ts) on OTLP/HTTP's port 4318 unless args say otherwise.
import { describe, expect, it } from 'vitest';
import { BUILT_IN_IMAGES, containerLaunch, resolveImage } from '../../src/sandbox/images/catalog.js';
import type { HostTools } from '../../src/sandbox/images/host-tools.js';

const host: HostTools = { node: '/usr/bin/node', nodeVersion: '24.11.1', amesh: '/repo/bin/amesh.js' };

describe('amesh/otlp-receiver image', () => {
  it('is listed and maps onto the built-in program, also under ghcr.io and with a tag', () => {
    expect(BUILT_IN_IMAGES).toContain('amesh/otlp-receiver');
    for (const image of ['amesh/otlp-receiver', 'ghcr.io/amesh/otlp-receiver:0.1']) {
      const plan = resolveImage(image, host);
      if ('error' in plan) throw new Error(plan.error);
      expect(containerLaunch(plan, {}, '/c', host).argv).toEqual(['/usr/bin/node', '/repo/bin/amesh.js', 'image', 'otlp-receiver']);
      expect(containerLaunch(plan, { args: ['--port', '14318'] }, '/c', host).argv).toEqual(['/usr/bin/node', '/repo/bin/amesh.js', 'image', 'otlp-receiver', '--port', '14318']);
    }
  });
});
