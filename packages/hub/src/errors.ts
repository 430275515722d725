/** REST error codes (docs/ERRORS.md), each with its HTTP status. */
export const HUB_ERRORS = {
  HUB_UNAUTHORIZED: 401,
  HUB_SLACK_BAD_SIGNATURE: 401,
  HUB_SLACK_STALE_REQUEST: 401,
  HUB_FORBIDDEN: 403,
  HUB_RATE_LIMITED: 429,
  HUB_BAD_REQUEST: 400,
  HUB_INVALID_RULE: 400,
  HUB_TOKEN_NOT_FOUND: 404,
  HUB_RULE_NOT_FOUND: 404,
  HUB_SILENCE_NOT_FOUND: 404,
  HUB_NAME_TAKEN: 409,
  HUB_NOT_WAITING: 409,
  HUB_NOT_FOUND: 404,
  HUB_AGENT_NOT_FOUND: 404,
  HUB_INCIDENT_NOT_FOUND: 404,
  HUB_EXEC_NOT_FOUND: 404,
  HUB_AGENT_OFFLINE: 409,
  HUB_EXEC_NOT_IN_CATALOGUE: 400,
  HUB_EXEC_NOT_DELIVERED: 502,
  HUB_EXEC_TIMEOUT: 504,
  HUB_INCIDENT_RESOLVED: 409,
  HUB_PAYLOAD_TOO_LARGE: 413,
  HUB_UNAVAILABLE: 503,
  HUB_INTERNAL: 500,
} as const;
export type HubErrorCode = keyof typeof HUB_ERRORS;
export const HUB_ERROR_CODES = Object.keys(HUB_ERRORS) as HubErrorCode[];

/** An error a REST caller can meet: rendered as `{"error":{"code","message"}}` with its status. */
export class HubError extends Error {
  readonly code: HubErrorCode;
  readonly statusCode: number;
  constructor(code: HubErrorCode, message: string) {
    super(message);
    this.name = 'HubError';
    this.code = code;
    this.statusCode = HUB_ERRORS[code];
  }
}
