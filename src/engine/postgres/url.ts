/** `LIFELINE_POSTGRES_URL`, checked without loading the driver (the configuration is validated before anything opens). */

/**
 * Why `url` cannot be a PostgreSQL connection URL, or `undefined` when it can:
 * `postgres://[user[:password]@]host[:port]/database[?options]`.
 */
export function postgresUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "must be postgres://user:password@host:port/database";
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") return "must start with postgres:// or postgresql://";
  if (parsed.hostname === "") return "must name a host: postgres://user:password@host:port/database";
  if (parsed.pathname.length <= 1) return "must name a database: postgres://user:password@host:port/database";
  return undefined;
}

/** `url` with its password replaced by `***`, for logs and error messages. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparsable url)";
  }
}
