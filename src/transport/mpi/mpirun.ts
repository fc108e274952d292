// The mpirun command line `pipewright launch` runs: root allowance, oversubscription when there are
// more ranks than cores, binding, and the network: shared memory plus TCP on loopback only when every
// rank is local, else TCP on the one interface or subnet named by --iface (MPI's TCP traffic is not
// authenticated, so a job never listens on every interface by default).
//
// Binding: one core per rank by default. A bound rank's MPI communication thread shares the core
// with its compute thread; the transport therefore starts sends on the compute thread and only
// polls hot while the rank waits, so no ready message waits for a time slice.

/** `launch --bind`: what each rank is bound to (Open MPI's --bind-to). */
export const BIND_CHOICES = ["core", "none", "socket"] as const;
export type Bind = (typeof BIND_CHOICES)[number];
export interface MpirunPlan {
  ranks: number;
  hostfile?: string;
  /** Interface name (eth0) or CIDR (10.0.0.0/24) for all MPI traffic; required with remote hosts. */
  iface?: string;
  local: boolean;
  cores: number;
  root: boolean;
  /** Binding asked for; undefined: core, or none when there are more local ranks than cores. */
  bind?: Bind;
  /**
   * Whether shared memory may move large messages by a single copy (Linux CMA, checked on this
   * host): the receiver then pulls the data itself, so the sender need not be scheduled for it.
   */
  singleCopy: boolean;
  /** Environment variables forwarded to every rank (-x). */
  forward: readonly string[];
  program: readonly string[];
}

export function mpirunArgv(p: MpirunPlan): string[] {
  if (!p.local && !p.iface) {
    throw new Error(`the hostfile names other machines: give the job network with --iface NAME|CIDR (MPI traffic is unauthenticated; pipewright never listens on every interface)`);
  }
  const net = p.iface ?? "lo";
  const args = ["mpirun", "-n", String(p.ranks)];
  if (p.root) args.push("--allow-run-as-root");
  if (p.hostfile) args.push("--hostfile", p.hostfile);
  const oversubscribed = p.local && p.ranks > p.cores;
  if (oversubscribed && p.bind === "core") {
    throw new Error(`--bind core: ${p.ranks} ranks on ${p.cores} cores would share cores; use --bind none (the default here) or fewer ranks`);
  }
  if (oversubscribed) args.push("--oversubscribe");
  // Bound ranks would share a core when oversubscribed; unbound, the kernel spreads them.
  args.push("--bind-to", p.bind ?? (oversubscribed ? "none" : "core"));
  args.push("--mca", "btl", p.local ? "self,vader" : "self,vader,tcp");
  args.push("--mca", "btl_tcp_if_include", net, "--mca", "oob_tcp_if_include", net);
  // Without single copy, a large message moves in fragments that the sending rank must push.
  args.push("--mca", "btl_vader_single_copy_mechanism", p.singleCopy ? "cma" : "none");
  for (const v of p.forward) args.push("-x", v);
  args.push(...p.program);
  return args;
}

/** The line as a user would type it (quoted where needed). */
export function formatArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_./:=,@+-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(" ");
}
