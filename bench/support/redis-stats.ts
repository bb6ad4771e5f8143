import { readFileSync } from "node:fs";
import { Redis } from "ioredis";

/** User + system CPU a process has used so far, in ms, from /proc (Linux); NaN elsewhere. */
export function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/** `getconf CLK_TCK` is 100 on every Linux this bench is meant for. */
const CLOCK_TICKS_PER_SECOND = 100;

/** One command's totals on the server since the last `CONFIG RESETSTAT`. */
export interface CommandStat {
  readonly calls: number;
  /** Time Redis spent in it; a script's time includes the commands it called. */
  readonly usec: number;
}

/** Per command, from `INFO commandstats`: commands called inside Lua scripts are counted too. */
export async function commandStats(client: Redis): Promise<Record<string, CommandStat>> {
  const info = await client.info("commandstats");
  const stats: Record<string, CommandStat> = {};
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm))
    stats[match[1] ?? "?"] = { calls: Number(match[2]), usec: Number(match[3]) };
  return stats;
}

/** Empties Redis and zeroes its command statistics, so each phase starts alike and counts only itself. */
export async function resetRedis(client: Redis): Promise<void> {
  await client.flushall();
  await client.config("RESETSTAT");
}

/**
 * Counts the commands every ioredis client of this process sends over the wire, by name (what
 * `INFO commandstats` cannot tell apart from calls made inside Lua). It wraps
 * `Redis.prototype.sendCommand`, which pipelines and auto-pipelining also go through.
 */
export class WireCommandCounter {
  #counts = new Map<string, number>();

  /** Installs the counter; commands of `ignored` (the bench's own admin connection) are not counted. */
  constructor(ignored: Redis) {
    const counts = (): Map<string, number> => this.#counts;
    const original = Redis.prototype.sendCommand;
    Redis.prototype.sendCommand = function (this: Redis, ...params: Parameters<typeof original>) {
      if (this !== ignored) {
        const name = params[0].name.toLowerCase();
        counts().set(name, (counts().get(name) ?? 0) + 1);
      }
      return original.apply(this, params);
    };
  }

  /** The counts since the last call, by command. */
  take(): Record<string, number> {
    const taken = Object.fromEntries(this.#counts);
    this.#counts = new Map();
    return taken;
  }
}

/** CPU time every process on the machine has used so far, in ms, from /proc/stat (Linux); NaN elsewhere. */
export function machineCpuMs(): number {
  try {
    const [, ...fields] = readFileSync("/proc/stat", "utf8").split("\n")[0]?.trim().split(/\s+/) ?? [];
    // user nice system idle iowait irq softirq steal …: everything but idle and iowait is work.
    const ticks = fields.slice(0, 8).reduce((sum, value, i) => (i === 3 || i === 4 ? sum : sum + Number(value)), 0);
    return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}
