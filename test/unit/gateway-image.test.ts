// The sandbox runs the gateway Deployment's image `amesh/gateway:0.1.0` (args ["gateway-proxy"],
// waypoint/gateway.yaml) as `amesh gateway-proxy`.
import { describe, expect, it } from 'vitest';
import { BUILT_IN_IMAGES, containerLaunch, resolveImage, type ImagePlan } from '../../src/sandbox/images/catalog.js';
import type { HostTools } from '../../src/sandbox/images/host-tools.js';

const host: HostTools = { node: '/usr/bin/node', nodeVersion: '24.11.1', amesh: '/repo/bin/amesh.js', nginx: '/usr/sbin/nginx' };

function plan(image: string): ImagePlan {
  const p = resolveImage(image, host);
  if ('error' in p) throw new Error(p.error);
  return p;
}

describe('the gateway image', () => {
  it('runs `amesh gateway-proxy`, with or without the Deployment’s args', () => {
    expect(containerLaunch(plan('amesh/gateway:0.1.0'), { args: ['gateway-proxy'] }, '/c', host).argv).toEqual(['/usr/bin/node', '/repo/bin/amesh.js', 'gateway-proxy']);
    expect(containerLaunch(plan('ghcr.io/amesh/gateway'), {}, '/c', host).argv).toEqual(['/usr/bin/node', '/repo/bin/amesh.js', 'gateway-proxy']);
    expect(BUILT_IN_IMAGES).toContain('amesh/gateway');
  });
});
