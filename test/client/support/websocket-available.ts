import { existsSync } from "node:fs";

/**
 * The WebSocket endpoint is built in parallel with the SDK: its tests are skipped, not failed,
 * until `src/gateway/routes/websocket.ts` exists.
 */
export const WEBSOCKET_ROUTE_MISSING = !existsSync(new URL("../../../src/gateway/routes/websocket.ts", import.meta.url));
