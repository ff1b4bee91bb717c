import { describe, expect, it } from 'vitest';
import { controllerSettings, readControllerConfig } from '../../src/config/controller-config.js';
import { DEFAULT_TRUSTED_NODE_AGENTS } from '../../src/controller/ca/types.js';
import { isAmeshError } from '../../src/errors/amesh-error.js';

describe('readControllerConfig', () => {
  it('has documented defaults and is frozen', () => {
    const c = readControllerConfig({});
    expect(c).toEqual({
      logLevel: 'info',
      caPort: 15012,
      readinessPort: 15021,
      monitoringPort: 15014,
      trustDomain: 'cluster.local',
      certDefaultTtlSeconds: 86_400,
      certMaxTtlSeconds: 86_400,
      namespace: 'amesh-system',
      trustedNodeAgents: DEFAULT_TRUSTED_NODE_AGENTS,
      rootPollMs: 5000,
      drainTimeoutMs: 20_000,
      rootNamespace: 'amesh-system',
      clusterDomain: 'cluster.local',
      xdsDebounceMs: 50,
      xdsMaxDelayMs: 1000,
      watchStallMs: 300_000,
      waypointImage: 'amesh/waypoint:0.1.0',
      gatewayImage: 'amesh/gateway:0.1.0',
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.trustedNodeAgents)).toBe(true);
  });

  it('reads every setting', () => {
    const c = readControllerConfig({
      AMESH_CA_PORT: '0',
      AMESH_READINESS_PORT: '0',
      AMESH_TRUST_DOMAIN: 'example.org',
      AMESH_CERT_DEFAULT_TTL_SECONDS: '3600',
      AMESH_CERT_MAX_TTL_SECONDS: '7200',
      AMESH_CONTROLLER_NAMESPACE: 'mesh',
      AMESH_TRUSTED_NODE_AGENTS: ' a/b , c/d ,',
      AMESH_LOG_LEVEL: 'debug',
      AMESH_ROOT_POLL_MS: '250',
    });
    expect(c).toMatchObject({ caPort: 0, readinessPort: 0, trustDomain: 'example.org', certDefaultTtlSeconds: 3600, certMaxTtlSeconds: 7200, namespace: 'mesh', trustedNodeAgents: ['a/b', 'c/d'], logLevel: 'debug', rootPollMs: 250 });
  });

  it('takes the namespace from POD_NAMESPACE unless AMESH_CONTROLLER_NAMESPACE is set', () => {
    expect(readControllerConfig({ POD_NAMESPACE: 'istio-system' }).namespace).toBe('istio-system');
    expect(readControllerConfig({ POD_NAMESPACE: 'istio-system', AMESH_CONTROLLER_NAMESPACE: 'mesh' }).namespace).toBe('mesh');
    // The root namespace (mesh-wide policy) follows the controller's namespace unless set.
    expect(readControllerConfig({ POD_NAMESPACE: 'istio-system' }).rootNamespace).toBe('istio-system');
    expect(readControllerConfig({ POD_NAMESPACE: 'istio-system', AMESH_ROOT_NAMESPACE: 'mesh-root' }).rootNamespace).toBe('mesh-root');
  });

  it.each([
    [{ AMESH_CA_PORT: '70000' }, 'AMESH_CA_PORT'],
    [{ AMESH_CA_PORT: 'abc' }, 'AMESH_CA_PORT'],
    [{ AMESH_TRUST_DOMAIN: 'Not A Domain' }, 'AMESH_TRUST_DOMAIN'],
    [{ AMESH_CERT_DEFAULT_TTL_SECONDS: '10' }, 'AMESH_CERT_DEFAULT_TTL_SECONDS'],
    [{ AMESH_CERT_MAX_TTL_SECONDS: '1.5' }, 'AMESH_CERT_MAX_TTL_SECONDS'],
    [{ AMESH_CERT_DEFAULT_TTL_SECONDS: '7200', AMESH_CERT_MAX_TTL_SECONDS: '3600' }, 'AMESH_CERT_MAX_TTL_SECONDS'],
    [{ AMESH_CONTROLLER_NAMESPACE: 'Bad_NS' }, 'AMESH_CONTROLLER_NAMESPACE'],
    [{ POD_NAMESPACE: 'Bad_NS' }, 'POD_NAMESPACE'],
    [{ AMESH_TRUSTED_NODE_AGENTS: 'amesh-node' }, 'AMESH_TRUSTED_NODE_AGENTS'],
    [{ AMESH_TRUSTED_NODE_AGENTS: 'a/b/c' }, 'AMESH_TRUSTED_NODE_AGENTS'],
    [{ AMESH_LOG_LEVEL: 'loud' }, 'AMESH_LOG_LEVEL'],
    [{ AMESH_TYPO: '1' }, 'AMESH_TYPO'],
    [{ AMESH_WAYPOINT_IMAGE: 'amesh/waypoint:' }, 'AMESH_WAYPOINT_IMAGE'],
    [{ AMESH_WAYPOINT_IMAGE: 'Amesh/Waypoint' }, 'AMESH_WAYPOINT_IMAGE'],
    [{ AMESH_GATEWAY_IMAGE: 'amesh/gateway 1.0' }, 'AMESH_GATEWAY_IMAGE'],
    [{ AMESH_GATEWAY_IMAGE: 'https://registry/amesh/gateway' }, 'AMESH_GATEWAY_IMAGE'],
  ])('rejects %j naming the setting', (env, name) => {
    let caught: unknown;
    try {
      readControllerConfig(env);
    } catch (err) {
      caught = err;
    }
    expect(isAmeshError(caught, 'AMESH_CONFIG_INVALID')).toBe(true);
    expect((caught as Error).message).toContain(name);
  });

  it('takes the images of deployed waypoints and gateways (registry with port, tag or digest)', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const c = readControllerConfig({ AMESH_WAYPOINT_IMAGE: 'localhost:5000/mesh/waypoint:1.2.3', AMESH_GATEWAY_IMAGE: `ghcr.io/amesh/gateway@${digest}` });
    expect(c).toMatchObject({ waypointImage: 'localhost:5000/mesh/waypoint:1.2.3', gatewayImage: `ghcr.io/amesh/gateway@${digest}` });
    expect(readControllerConfig({ AMESH_WAYPOINT_IMAGE: 'waypoint' }).waypointImage).toBe('waypoint');
  });

  it('ignores AMESH_* variables of the tooling', () => {
    expect(() => readControllerConfig({ AMESH_SANDBOX_DIR: '/tmp/x' })).not.toThrow();
  });

  it('lists every setting with its variable and default', () => {
    const envs = controllerSettings().map((s) => s.env);
    expect(envs).toEqual(expect.arrayContaining(['AMESH_CA_PORT', 'AMESH_TRUST_DOMAIN', 'AMESH_CERT_DEFAULT_TTL_SECONDS', 'AMESH_CERT_MAX_TTL_SECONDS', 'AMESH_CONTROLLER_NAMESPACE', 'AMESH_TRUSTED_NODE_AGENTS', 'AMESH_LOG_LEVEL', 'AMESH_READINESS_PORT']));
    expect(new Set(envs).size).toBe(envs.length);
  });
});
