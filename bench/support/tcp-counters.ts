import { readFileSync } from "node:fs";

/** Machine-wide TCP counters that show connections the kernel dropped before a server accepted them. */
export interface TcpCounters {
  /** Handshakes completed while a listen queue was full (the final ACK is dropped; the client retries later). */
  readonly listenOverflows: number;
  /** SYNs sent again because the first went unanswered: each costs a client 1 s, then 2 s, 4 s … */
  readonly synRetransmits: number;
}

/** Reads the counters from /proc/net/netstat (Linux); zeros elsewhere. They count every process on the machine. */
export function tcpCounters(): TcpCounters {
  try {
    const lines = readFileSync("/proc/net/netstat", "utf8").split("\n");
    const header = lines.find((l) => l.startsWith("TcpExt:"))?.split(/\s+/) ?? [];
    const values = lines.filter((l) => l.startsWith("TcpExt:"))[1]?.split(/\s+/) ?? [];
    const field = (name: string): number => Number(values[header.indexOf(name)] ?? Number.NaN);
    return { listenOverflows: field("ListenOverflows"), synRetransmits: field("TCPSynRetrans") };
  } catch {
    return { listenOverflows: 0, synRetransmits: 0 };
  }
}

/** What changed between two readings. */
export function tcpCountersSince(before: TcpCounters): TcpCounters {
  const now = tcpCounters();
  return { listenOverflows: now.listenOverflows - before.listenOverflows, synRetransmits: now.synRetransmits - before.synRetransmits };
}
