/** On every answer of the door (PROTOCOL.md §12): no content sniffing; readable where CORS allows. */
export const SAFETY_HEADERS = { "x-content-type-options": "nosniff", "cross-origin-resource-policy": "cross-origin" } as const;
