import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, expectTypeOf, it } from "vitest";
import {
  ERROR_CODES,
  HTTP_STATUS_ERROR_FAMILY,
  httpStatusErrorCode,
  isErrorCode,
  statusOf,
  type ErrorCode,
} from "../../src/core/errors.ts";
import type { ErrorInfo } from "../../src/core/entries.ts";
import { errorFromResponse, type LifelineClientError } from "../../src/client/errors.ts";
import { tableUnder, unquote } from "../support/markdown-table.ts";

const ROOT = new URL("../../", import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, ROOT), "utf8");

describe("the error registry and docs/http-api.md", () => {
  const documented = tableUnder(read("docs/http-api.md"), "## Errors").map(([code = "", status = ""]) => ({
    code: unquote(code),
    status: unquote(status),
  }));

  it("list the same codes with the same statuses, both ways", () => {
    const registered = [
      ...Object.entries(ERROR_CODES).map(([code, { status }]) => ({ code, status: status === null ? "—" : String(status) })),
      { code: HTTP_STATUS_ERROR_FAMILY, status: "<status>" },
    ];
    const byCode = (a: { code: string }, b: { code: string }): number => a.code.localeCompare(b.code);
    expect(documented.length).toBeGreaterThan(10); // the table was found and read
    expect([...documented].sort(byCode)).toEqual([...registered].sort(byCode));
    expect(new Set(documented.map((row) => row.code)).size).toBe(documented.length);
  });

  it("know the http_<status> family as codes of their own", () => {
    expectTypeOf(httpStatusErrorCode(502)).toExtend<ErrorCode>();
    expectTypeOf<ErrorInfo["code"]>().toEqualTypeOf<ErrorCode>();
    expectTypeOf<LifelineClientError["code"]>().toEqualTypeOf<ErrorCode>();
    expect(httpStatusErrorCode(502)).toBe("http_502");
    expect(isErrorCode("http_502")).toBe(true);
    expect(statusOf("http_502")).toBe(502);
    expect(isErrorCode("http_5x")).toBe(false);
    expect(isErrorCode("generation_not_found")).toBe(true);
    expect(statusOf("generation_not_found")).toBe(404);
    expect(statusOf("model_timeout")).toBeUndefined();
    expect(isErrorCode("toString")).toBe(false); // the registry's own keys only, nothing inherited
  });
});

describe("the client SDK reading a failed response", () => {
  const answer = (status: number, body: string): Response =>
    new Response(body, { status, headers: { "content-type": "application/json" } });

  it("keeps a registered code, and files anything else under http_<status>", async () => {
    const known = await errorFromResponse(answer(404, '{"error":{"code":"generation_not_found","message":"No generation has this id."}}'));
    expect({ code: known.code, status: known.status }).toEqual({ code: "generation_not_found", status: 404 });
    const newer = await errorFromResponse(answer(409, '{"error":{"code":"brand_new_code","message":"Something new."}}'));
    expect({ code: newer.code, message: newer.message }).toEqual({ code: "http_409", message: "brand_new_code: Something new." });
    const proxy = await errorFromResponse(new Response("<html>Bad Gateway</html>", { status: 502 }));
    expect({ code: proxy.code, message: proxy.message }).toEqual({ code: "http_502", message: "HTTP 502" });
  });
});

describe("every registered code", () => {
  /** Every TypeScript file under src, read once. */
  const sources = (function walk(dir: string): string[] {
    return readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return walk(path);
      return path.endsWith(".ts") ? [readFileSync(path, "utf8")] : [];
    });
  })(fileURLToPath(new URL("src", ROOT)));
  const registry = read("src/core/errors.ts");

  it("is used outside the registry: none is left that nothing produces or reads", () => {
    const others = sources.filter((text) => text !== registry).join("\n");
    const unused = Object.keys(ERROR_CODES).filter((code) => !others.includes(`"${code}"`));
    expect(unused).toEqual([]);
    expect(others).toContain("httpStatusErrorCode(");
  });
});
