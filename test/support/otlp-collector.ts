import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";

/**
 * An OpenTelemetry collector in the test process: a real HTTP server on a free loopback port that
 * takes OTLP/HTTP protobuf posts on `/v1/traces` (gzip or not), decodes every span with a small
 * protobuf reader written against the OTLP trace schema
 * (opentelemetry/proto/trace/v1/trace.proto) and keeps them for the test to look at.
 */

export type AttributeValue = string | number | boolean | readonly AttributeValue[] | undefined;

/** A span as the collector received it. */
export interface ReceivedSpan {
  /** `service.name` of the resource that sent it. */
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  /** `""` for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP's SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  /** 0 unset, 1 ok, 2 error. */
  readonly statusCode: number;
  readonly links: readonly { readonly traceId: string; readonly spanId: string }[];
}

export interface OtlpCollector {
  /** `http://127.0.0.1:<port>`: the value of OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Every request received, on any path. */
  readonly requests: { readonly method: string; readonly path: string; readonly contentType: string }[];
  /** Problems decoding a post (a test fails on any). */
  readonly problems: string[];
  close(): Promise<void>;
}

/** Starts a collector on a free loopback port. */
export async function startOtlpCollector(): Promise<OtlpCollector> {
  const spans: ReceivedSpan[] = [];
  const requests: { method: string; path: string; contentType: string }[] = [];
  const problems: string[] = [];
  const server: Server = createServer((req, res) => {
    const contentType = req.headers["content-type"] ?? "";
    requests.push({ method: req.method ?? "", path: req.url ?? "", contentType });
    void readBody(req).then((body) => {
      if (req.method !== "POST" || req.url !== "/v1/traces" || contentType !== "application/x-protobuf") {
        res.writeHead(404).end();
        return;
      }
      try {
        const bytes = req.headers["content-encoding"] === "gzip" ? gunzipSync(body) : body;
        spans.push(...decodeExportRequest(bytes));
      } catch (error) {
        problems.push((error as Error).message);
        res.writeHead(400).end();
        return;
      }
      // An empty ExportTraceServiceResponse: everything accepted.
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    requests,
    problems,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** One field of a protobuf message: its number, and its value by wire type. */
type Field =
  | { readonly no: number; readonly wire: 0; readonly value: bigint }
  | { readonly no: number; readonly wire: 1; readonly value: Buffer }
  | { readonly no: number; readonly wire: 2; readonly value: Buffer }
  | { readonly no: number; readonly wire: 5; readonly value: Buffer };

/** The fields of one message, in order (protobuf wire format: varint, 64-bit, length-delimited, 32-bit). */
function fieldsOf(buf: Buffer): Field[] {
  const fields: Field[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (pos >= buf.length) throw new Error("protobuf: a varint runs past the end");
      const byte = buf[pos++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      if (shift > 63n) throw new Error("protobuf: a varint is too long");
    }
  };
  const take = (n: number): Buffer => {
    if (pos + n > buf.length) throw new Error("protobuf: a field runs past the end");
    const slice = buf.subarray(pos, pos + n);
    pos += n;
    return slice;
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const no = key >>> 3;
    const wire = key & 7;
    if (wire === 0) fields.push({ no, wire, value: varint() });
    else if (wire === 1) fields.push({ no, wire, value: take(8) });
    else if (wire === 2) fields.push({ no, wire, value: take(Number(varint())) });
    else if (wire === 5) fields.push({ no, wire, value: take(4) });
    else throw new Error(`protobuf: wire type ${wire} is not one OTLP uses`);
  }
  return fields;
}

const bytesOf = (fields: Field[], no: number): Buffer[] =>
  fields.filter((f): f is Field & { wire: 2 } => f.no === no && f.wire === 2).map((f) => f.value);
const firstBytes = (fields: Field[], no: number): Buffer | undefined => bytesOf(fields, no)[0];
const stringOf = (fields: Field[], no: number): string => firstBytes(fields, no)?.toString("utf8") ?? "";
const hexOf = (fields: Field[], no: number): string => firstBytes(fields, no)?.toString("hex") ?? "";
const varintOf = (fields: Field[], no: number): bigint => {
  const field = fields.find((f) => f.no === no && f.wire === 0);
  return field?.wire === 0 ? field.value : 0n;
};
const fixed64Of = (fields: Field[], no: number): bigint => {
  const field = fields.find((f) => f.no === no && f.wire === 1);
  return field?.wire === 1 ? field.value.readBigUInt64LE(0) : 0n;
};

/** AnyValue: string 1, bool 2, int 3, double 4, array 5, kvlist 6 (not used by Lifeline), bytes 7. */
function anyValueOf(buf: Buffer): AttributeValue {
  const [field] = fieldsOf(buf);
  if (!field) return undefined;
  if (field.no === 1 && field.wire === 2) return field.value.toString("utf8");
  if (field.no === 2 && field.wire === 0) return field.value !== 0n;
  if (field.no === 3 && field.wire === 0) return Number(BigInt.asIntN(64, field.value));
  if (field.no === 4 && field.wire === 1) return field.value.readDoubleLE(0);
  if (field.no === 5 && field.wire === 2) return bytesOf(fieldsOf(field.value), 1).map(anyValueOf);
  if (field.no === 7 && field.wire === 2) return field.value.toString("hex");
  throw new Error(`protobuf: AnyValue field ${field.no} is not decoded here`);
}

/** KeyValue list: key 1, value 2. */
function attributesOf(fields: Field[], no: number): Record<string, AttributeValue> {
  const attributes: Record<string, AttributeValue> = {};
  for (const kv of bytesOf(fields, no)) {
    const f = fieldsOf(kv);
    const value = firstBytes(f, 2);
    attributes[stringOf(f, 1)] = value ? anyValueOf(value) : undefined;
  }
  return attributes;
}

/** ExportTraceServiceRequest: resource_spans 1 → (resource 1 → attributes 1; scope_spans 2 → spans 2). */
export function decodeExportRequest(body: Buffer): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const resourceSpans of bytesOf(fieldsOf(body), 1)) {
    const rs = fieldsOf(resourceSpans);
    const resource = firstBytes(rs, 1);
    const service = String(resource ? (attributesOf(fieldsOf(resource), 1)["service.name"] ?? "") : "");
    for (const scopeSpans of bytesOf(rs, 2)) {
      for (const spanBytes of bytesOf(fieldsOf(scopeSpans), 2)) {
        const s = fieldsOf(spanBytes);
        const status = firstBytes(s, 15);
        spans.push({
          service,
          traceId: hexOf(s, 1),
          spanId: hexOf(s, 2),
          parentSpanId: hexOf(s, 4),
          name: stringOf(s, 5),
          kind: Number(varintOf(s, 6)),
          startNs: fixed64Of(s, 7),
          endNs: fixed64Of(s, 8),
          attributes: attributesOf(s, 9),
          statusCode: status ? Number(varintOf(fieldsOf(status), 3)) : 0,
          links: bytesOf(s, 13).map((link) => {
            const l = fieldsOf(link);
            return { traceId: hexOf(l, 1), spanId: hexOf(l, 2) };
          }),
        });
      }
    }
  }
  return spans;
}
