import type { FastifyInstance } from "fastify";
import type { DoorOptions } from "../door-options.ts";

/** Registers this protocol door's routes. */
export function openAiRoutes(_app: FastifyInstance, _options: DoorOptions): void {}
