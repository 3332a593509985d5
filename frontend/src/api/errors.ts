/** An error the API answered with, in its OpenAI-shaped body, or a network failure. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string | null;
  readonly param: string | null;
  /** True when the server has no such route at all (an endpoint not deployed yet). */
  readonly missingEndpoint: boolean;

  constructor(
    status: number,
    message: string,
    opts: { code?: string | null; param?: string | null; missingEndpoint?: boolean } = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = opts.code ?? null;
    this.param = opts.param ?? null;
    this.missingEndpoint = opts.missingEndpoint ?? false;
  }
}

interface ErrorBody {
  error?: { message?: string; code?: string | null; param?: string | null };
  detail?: unknown;
}

/** The ApiError for a failed response's status and parsed body. */
export function toApiError(status: number, body: unknown): ApiError {
  const b = (body ?? {}) as ErrorBody;
  if (b.error && typeof b.error.message === "string") {
    return new ApiError(status, b.error.message, { code: b.error.code, param: b.error.param });
  }
  // The framework's own 404 ({"detail": "Not Found"}): no route at that path.
  if (status === 404 && b.detail === "Not Found") {
    return new ApiError(404, "this server does not offer that API yet", {
      missingEndpoint: true,
    });
  }
  if (status === 405) {
    return new ApiError(405, "this server does not offer that API yet", {
      missingEndpoint: true,
    });
  }
  const detail = typeof b.detail === "string" ? b.detail : `HTTP ${status}`;
  return new ApiError(status, detail);
}
