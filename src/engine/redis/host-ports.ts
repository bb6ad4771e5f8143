export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Parses `host:port,host:port`; `undefined` when any part is not one. */
export function parseHostPorts(text: string): HostPort[] | undefined {
  const parts = text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const out: HostPort[] = [];
  for (const part of parts) {
    const match = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(part);
    const port = Number(match?.[2]);
    if (!match?.[1] || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
    out.push({ host: match[1].replace(/^\[|\]$/g, ""), port });
  }
  return out.length > 0 ? out : undefined;
}
