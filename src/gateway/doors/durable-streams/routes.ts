import type { FastifyInstance } from "fastify";
import type { DoorOptions } from "../door-options.ts";

/** Registers this protocol door's routes. */
export function durableStreamRoutes(_app: FastifyInstance, _options: DoorOptions): void {}
