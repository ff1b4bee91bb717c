/**
 * The kernel's TCP counters of one network namespace (/proc/net/snmp): how many connections
 * it opened and accepted. Read by the connection-rate scenario and by the testbed's check that
 * a mesh path really tunnels.
 */

/** The `Tcp:` counters of a /proc/net/snmp text (two lines: names, then values). */
export function parseSnmpTcp(text: string): Record<string, number> {
  const lines = text.split('\n').filter((l) => l.startsWith('Tcp:'));
  if (lines.length < 2) throw new Error('no Tcp: lines in /proc/net/snmp');
  const names = lines[0]!.split(/\s+/).slice(1);
  const values = lines[1]!.split(/\s+/).slice(1).map(Number);
  if (names.length !== values.length || values.some((v) => !Number.isFinite(v))) throw new Error(`malformed Tcp: lines in /proc/net/snmp: ${lines[1]}`);
  return Object.fromEntries(names.map((n, i) => [n, values[i]!]));
}
