// `launch --iface`: the network MPI may use, checked before mpirun starts. Open MPI only warns about
// a value it cannot use and then runs on every interface, so a typo would silently drop the limit.
import type { NetworkInterfaceInfo } from "node:os";

export type Interfaces = Record<string, NetworkInterfaceInfo[] | undefined>;

const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

function ipv4(octets: readonly string[]): number | null {
  const n = octets.map(Number);
  if (n.some((x) => x > 255)) return null;
  return ((n[0] << 24) | (n[1] << 16) | (n[2] << 8) | n[3]) >>> 0;
}

function inSubnet(address: string, net: number, bits: number): boolean {
  const a = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  const ip = a ? ipv4(a.slice(1)) : null;
  if (ip === null) return false;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return ((ip & mask) >>> 0) === ((net & mask) >>> 0);
}

const listed = (ifs: Interfaces): string =>
  Object.entries(ifs).map(([name, as]) => `${name} (${(as ?? []).filter((a) => a.family === "IPv4").map((a) => a.cidr).join(", ") || "no IPv4 address"})`).join(", ");

/**
 * The --iface value when this host can use it: an interface name it has, or an IPv4 subnet
 * a.b.c.d/N that one of its addresses lies in (the launching host joins the job's network too).
 * Anything else is an error naming the value and this host's interfaces.
 */
export function checkIface(value: string, ifs: Interfaces): string {
  if (value.includes("/") || /^[\d.]+$/.test(value)) {
    const m = CIDR.exec(value);
    const net = m ? ipv4(m.slice(1, 5)) : null;
    const bits = m ? Number(m[5]) : NaN;
    if (!m || net === null || bits > 32) {
      throw new Error(`--iface ${value}: not an interface name or an IPv4 subnet a.b.c.d/N (octets 0-255, N 0-32)`);
    }
    const here = Object.values(ifs).some((as) => (as ?? []).some((a) => a.family === "IPv4" && inSubnet(a.address, net, bits)));
    if (!here) throw new Error(`--iface ${value}: no interface of this host has an address in that subnet; this host has ${listed(ifs)}`);
    return value;
  }
  if (!(value in ifs)) throw new Error(`--iface ${value}: this host has no such interface; it has ${listed(ifs)}`);
  return value;
}
