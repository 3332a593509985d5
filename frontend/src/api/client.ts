// The typed API client. Routes in the backend's OpenAPI schema go through openapi-fetch
// with the generated `paths` types. `raw` is for what that cannot express: SSE, file
// downloads and uploads.
import createClient, { type Client } from "openapi-fetch";

import { authHeaders } from "./auth";
import { ApiError, toApiError } from "./errors";
import type { paths } from "./schema";
import type {
  AuditEventDetail,
  AuditExportQuery,
  AuditPage,
  AuditQuery,
  AuthConfig,
  ChatRequest,
  ConversationDetail,
  ConversationPage,
  ConversationSummary,
  DashboardStats,
  DocumentOut,
  DocumentPage,
  DocumentText,
  FeedbackIn,
  FeedbackItem,
  FeedbackPage,
  FeedbackQuery,
  IngestJob,
  IssuedKey,
  KeyCreate,
  KeyOut,
  LimitUsage,
  Me,
  ModelCard,
  QuotaPolicy,
  QuotaPolicyIn,
  Review,
  ReviewDecision,
  ReviewOutcome,
  ReviewPage,
  ReviewStatus,
  RouteInfo,
  RouterStatus,
  StatsQuery,
  TeamOut,
  TrainResult,
  UserOut,
  UserUpdate,
  ReviewQueueStats,
  SafetyFlag,
  SafetyFlagPage,
  SafetyFlagQuery,
  SafetyFlagStats,
  SafetyLabel,
} from "./types";
import { streamChat, type StreamEvent } from "./stream";

export interface ApiOptions {
  /** The API key; null: the browser's session cookie (after SSO) authenticates. */
  key: string | null;
  baseUrl?: string;
  fetch?: typeof fetch;
}

export class Api {
  private readonly client: Client<paths>;
  private readonly key: string | null;
  private readonly baseUrl: string;
  private readonly fetchFn: typeof fetch;

  constructor({ key, baseUrl = "", fetch: fetchFn }: ApiOptions) {
    this.key = key;
    this.baseUrl = baseUrl;
    // Late-bound so tests (and polyfills) that replace globalThis.fetch are honoured.
    this.fetchFn = fetchFn ?? ((input, init) => globalThis.fetch(input, init));
    this.client = createClient<paths>({
      baseUrl: baseUrl || globalThis.location?.origin || "",
      headers: authHeaders(key),
      fetch: (request: Request) => this.fetchFn(request),
    });
  }

  async models(): Promise<ModelCard[]> {
    const r = await this.client.GET("/v1/models");
    return unwrap(r).data;
  }

  /** The caller's conversations, newest first; `search`: only those whose title or messages hold it. */
  async conversations(cursor?: string, limit = 30, search?: string): Promise<ConversationPage> {
    const r = await this.client.GET("/api/v1/conversations", {
      params: { query: { limit, ...(cursor ? { cursor } : {}), ...(search ? { q: search } : {}) } },
    });
    return unwrap(r);
  }

  async renameConversation(id: string, title: string): Promise<ConversationSummary> {
    return unwrap(
      await this.client.PATCH("/api/v1/conversations/{conversation_id}", {
        params: { path: { conversation_id: id } },
        body: { title },
      }),
    );
  }

  /** Remove exchanges (by request id) a regenerated, edited or compared answer replaced. */
  async dropExchanges(id: string, requestIds: string[]): Promise<ConversationDetail> {
    return unwrap(
      await this.client.POST("/api/v1/conversations/{conversation_id}/drop-exchanges", {
        params: { path: { conversation_id: id } },
        body: { request_ids: requestIds },
      }),
    );
  }

  async conversation(id: string): Promise<ConversationDetail> {
    const r = await this.client.GET("/api/v1/conversations/{conversation_id}", {
      params: { path: { conversation_id: id } },
    });
    return unwrap(r);
  }

  async deleteConversation(id: string): Promise<void> {
    const r = await this.client.DELETE("/api/v1/conversations/{conversation_id}", {
      params: { path: { conversation_id: id } },
    });
    if (r.error !== undefined || !r.response.ok) throw toApiError(r.response.status, r.error);
  }

  async route(text: string, model = "auto"): Promise<RouteInfo> {
    const r = await this.client.POST("/v1/route", { body: { text, model } });
    return unwrap(r).expertgate;
  }

  /** Stream one chat completion; see stream.ts for the events. `fresh`: never a cached answer. */
  chat(body: ChatRequest, signal?: AbortSignal, fresh = false): AsyncGenerator<StreamEvent> {
    return streamChat(this.fetchFn, `${this.baseUrl}/v1/chat/completions`, this.key, body, signal, fresh);
  }

  async feedback(body: FeedbackIn): Promise<{ id: number }> {
    return unwrap(await this.client.POST("/api/v1/feedback", { body }));
  }

  async routerStatus(): Promise<RouterStatus> {
    return unwrap(await this.client.GET("/api/v1/admin/router"));
  }

  async promoteRouter(version: string): Promise<RouterStatus> {
    return unwrap(await this.client.POST("/api/v1/admin/router/promote", { body: { version } }));
  }

  async rollbackRouter(): Promise<RouterStatus> {
    return unwrap(await this.client.POST("/api/v1/admin/router/rollback"));
  }

  async shadowRouter(version: string | null): Promise<RouterStatus> {
    return unwrap(await this.client.POST("/api/v1/admin/router/shadow", { body: { version } }));
  }

  async trainRouter(promote: boolean): Promise<TrainResult> {
    return unwrap(await this.client.POST("/api/v1/admin/router/train", { body: { promote } }));
  }

  async feedbackQueue(): Promise<FeedbackItem[]> {
    return unwrap(await this.client.GET("/api/v1/admin/router/feedback"));
  }

  /** Every user's feedback, newest first (admins and auditors). */
  async feedbackLog(query: FeedbackQuery): Promise<FeedbackPage> {
    return unwrap(await this.client.GET("/api/v1/admin/feedback", { params: { query } }));
  }

  async relabel(requestId: string, domain: string): Promise<{ example_id: number; domain: string }> {
    return unwrap(
      await this.client.POST("/api/v1/admin/router/relabel", {
        body: { request_id: requestId, domain },
      }),
    );
  }

  async me(): Promise<Me> {
    return unwrap(await this.client.GET("/api/v1/me"));
  }

  /** How this server lets people sign in (needs no credentials). */
  async authConfig(): Promise<AuthConfig> {
    return unwrap(await this.client.GET("/api/v1/auth/config"));
  }

  /** End the cookie session on the server (revoked at once) and clear the cookie. */
  async logout(): Promise<void> {
    const r = await this.client.POST("/auth/logout");
    if (!r.response.ok) throw toApiError(r.response.status, r.error);
  }

  async audit(query: AuditQuery): Promise<AuditPage> {
    return unwrap(await this.client.GET("/api/v1/admin/audit", { params: { query } }));
  }

  async auditEvent(seq: number): Promise<AuditEventDetail> {
    return unwrap(
      await this.client.GET("/api/v1/admin/audit/{seq}", { params: { path: { seq } } }),
    );
  }

  async auditExport(query: AuditExportQuery): Promise<Blob> {
    const response = await this.raw("GET", `/api/v1/admin/audit/export${queryString(query)}`);
    return response.blob();
  }

  /** Documents by id, a page at a time (`cursor`: the previous page's `next_cursor`). */
  async documents(domain?: string, cursor?: string, limit = 100): Promise<DocumentPage> {
    return unwrap(
      await this.client.GET("/api/v1/documents", {
        params: { query: { limit, ...(cursor ? { cursor } : {}), ...(domain ? { domain } : {}) } },
      }),
    );
  }

  /** Upload files into a domain's index; answers with the ingest job to poll. */
  async upload(domain: string, files: File[], groups: string[] = []): Promise<IngestJob> {
    const form = new FormData();
    form.set("domain", domain);
    form.set("groups", groups.join(","));
    for (const f of files) form.append("files", f, f.name);
    // multipart: the browser sets the boundary, so this goes through fetch directly.
    const response = await this.raw("POST", "/api/v1/documents", form);
    return (await response.json()) as IngestJob;
  }

  /** A document's whole text (404 when the caller may not see it). */
  async documentText(id: number): Promise<DocumentText> {
    return unwrap(
      await this.client.GET("/api/v1/documents/{document_id}/text", { params: { path: { document_id: id } } }),
    );
  }

  async ingestJob(id: string): Promise<IngestJob> {
    return unwrap(
      await this.client.GET("/api/v1/ingest-jobs/{job_id}", { params: { path: { job_id: id } } }),
    );
  }

  /** Release a document the safety check quarantined (admins; audited). */
  async releaseDocument(id: number): Promise<DocumentOut> {
    return unwrap(
      await this.client.POST("/api/v1/documents/{document_id}/release", {
        params: { path: { document_id: id } },
      }),
    ).document;
  }

  async deleteDocument(id: number): Promise<void> {
    unwrap(
      await this.client.DELETE("/api/v1/documents/{document_id}", {
        params: { path: { document_id: id } },
      }),
    );
  }

  async keys(user?: string): Promise<KeyOut[]> {
    const r = await this.client.GET("/api/v1/admin/keys", {
      params: { query: user ? { user } : {} },
    });
    return unwrap(r).data;
  }

  async createKey(body: KeyCreate): Promise<IssuedKey> {
    return unwrap(await this.client.POST("/api/v1/admin/keys", { body }));
  }

  async revokeKey(id: number): Promise<KeyOut> {
    return unwrap(
      await this.client.POST("/api/v1/admin/keys/{key_id}/revoke", {
        params: { path: { key_id: id } },
      }),
    );
  }

  async stats(query: StatsQuery = {}): Promise<DashboardStats> {
    return unwrap(await this.client.GET("/api/v1/admin/stats", { params: { query } }));
  }

  async users(): Promise<UserOut[]> {
    return unwrap(await this.client.GET("/api/v1/admin/users"));
  }

  async updateUser(id: number, body: UserUpdate): Promise<UserOut> {
    return unwrap(
      await this.client.PATCH("/api/v1/admin/users/{user_id}", { params: { path: { user_id: id } }, body }),
    );
  }

  async teams(): Promise<TeamOut[]> {
    return unwrap(await this.client.GET("/api/v1/admin/teams"));
  }

  async createTeam(name: string): Promise<TeamOut> {
    return unwrap(await this.client.POST("/api/v1/admin/teams", { body: { name } }));
  }

  async deleteTeam(id: number): Promise<void> {
    const r = await this.client.DELETE("/api/v1/admin/teams/{team_id}", {
      params: { path: { team_id: id } },
    });
    if (r.error !== undefined || !r.response.ok) throw toApiError(r.response.status, r.error);
  }

  async quotas(): Promise<QuotaPolicy[]> {
    return unwrap(await this.client.GET("/api/v1/admin/quotas"));
  }

  async setQuota(body: QuotaPolicyIn): Promise<QuotaPolicy> {
    return unwrap(await this.client.PUT("/api/v1/admin/quotas", { body }));
  }

  /** The caller's limits and what is left under each (empty when quotas are off). */
  async usage(): Promise<LimitUsage[]> {
    return unwrap(await this.client.GET("/api/v1/me/usage")).limits;
  }

  /** The review queue (reviewers and admins): reviews of the experts the caller may review, oldest first. */
  async reviews(status: ReviewStatus = "pending", cursor?: string, limit = 100): Promise<ReviewPage> {
    return unwrap(
      await this.client.GET("/api/v1/reviews", { params: { query: { status, limit, ...(cursor ? { cursor } : {}) } } }),
    );
  }

  /** One review: the whole of it for its reviewers, only the outcome for its asker. */
  async review(id: string): Promise<Review | ReviewOutcome> {
    return unwrap(
      await this.client.GET("/api/v1/reviews/{review_id}", { params: { path: { review_id: id } } }),
    );
  }

  /** The review queue's depth per expert and waiting times (admins, auditors, reviewers). */
  async reviewStats(): Promise<ReviewQueueStats> {
    return unwrap(await this.client.GET("/api/v1/reviews/stats"));
  }

  /** Approve, edit or reject a pending review; 409 `review_decided` once someone has. */
  async decideReview(id: string, body: ReviewDecision): Promise<Review> {
    return unwrap(
      await this.client.POST("/api/v1/reviews/{review_id}", { params: { path: { review_id: id } }, body }),
    );
  }

  /** Requests the input safety check flagged, newest first (admins and auditors). */
  async safetyFlags(query: SafetyFlagQuery = {}): Promise<SafetyFlagPage> {
    return unwrap(await this.client.GET("/api/v1/safety/flags", { params: { query } }));
  }

  /** Flags per expert and category over a window (admins and auditors). */
  async safetyStats(query: { since?: string; until?: string } = {}): Promise<SafetyFlagStats> {
    return unwrap(await this.client.GET("/api/v1/safety/stats", { params: { query } }));
  }

  /** An admin's label on a flag: benign (a false positive) or the right category; null clears it. */
  async labelSafetyFlag(id: number, label: SafetyLabel | null): Promise<SafetyFlag> {
    return unwrap(
      await this.client.POST("/api/v1/safety/flags/{flag_id}/label", { params: { path: { flag_id: id } }, body: { label } }),
    );
  }

  /** The labelled flags as training data, one JSON object per line (admins). */
  async exportSafetyFlags(): Promise<Blob> {
    return (await this.raw("GET", "/api/v1/safety/flags/export")).blob();
  }

  private async raw(method: string, path: string, body?: unknown): Promise<Response> {
    const headers = authHeaders(this.key);
    const form = body instanceof FormData;
    if (body !== undefined && !form) headers["content-type"] = "application/json";
    let response: Response;
    try {
      response = await this.fetchFn(`${this.baseUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : form ? body : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError(0, `the server could not be reached (${String(err)})`);
    }
    if (!response.ok) throw toApiError(response.status, await response.json().catch(() => null));
    return response;
  }

}

function unwrap<T>(r: { data?: T; error?: unknown; response: Response }): T {
  if (r.data === undefined) throw toApiError(r.response.status, r.error);
  return r.data;
}

export function queryString(query: object): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : "";
}
