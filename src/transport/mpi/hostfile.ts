// Open MPI hostfiles: one host per line, `HOST [slots=N] [max_slots=N]`, `#` comments, blank lines.
// An unparsable line is an error with its line number and text.
export interface HostEntry { host: string; slots: number | null; line: number }

const HOST = /^[A-Za-z0-9_.:-]+$/;

export function parseHostfile(text: string, file: string): HostEntry[] {
  const out: HostEntry[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) return;
    const [host, ...opts] = line.split(/\s+/);
    let slots: number | null = null;
    const bad = (why: string): never => {
      throw new Error(`hostfile ${file} line ${i + 1}: '${raw.trim()}' ${why}; each line is 'HOST [slots=N] [max_slots=N]'`);
    };
    if (!HOST.test(host)) bad(`does not start with a host name`);
    for (const o of opts) {
      const m = /^(slots|max_slots|max-slots)=(\d+)$/.exec(o);
      if (!m || Number(m[2]) < 1) bad(`has '${o}', not slots=N or max_slots=N with N >= 1`);
      if (m![1] === "slots") slots = Number(m![2]);
    }
    out.push({ host, slots, line: i + 1 });
  });
  if (out.length === 0) throw new Error(`hostfile ${file} names no host`);
  return out;
}

const LOCAL_NAMES = new Set(["localhost", "127.0.0.1", "::1"]);

/** Whether every host is this machine (then MPI traffic stays on loopback and shared memory). */
export function allLocal(hosts: readonly HostEntry[], hostname: string): boolean {
  return hosts.every((h) => LOCAL_NAMES.has(h.host) || h.host === hostname);
}
