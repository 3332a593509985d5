// Names for the generated OpenAPI types (schema.d.ts, `make api-client`), plus the
// contract of POST /api/v1/feedback, typed by hand until it lands in the schema.
import type { components, paths } from "./schema";

type Schemas = components["schemas"];

export type RouteInfo = Schemas["RouteInfo"];
export type Citation = Schemas["Citation"];
export type Fallback = Schemas["FallbackOut"];
export type ModelCard = Schemas["ModelCard"];
export type ChatRequest = Schemas["ChatRequest"];
export type ConversationSummary = Schemas["ConversationOut"];
export type ConversationPage = Schemas["ConversationPage"];
export type ConversationDetail = Schemas["ConversationDetail"];
export type StoredMessage = Schemas["MessageOut"];
export type StoredRoute = Schemas["StoredRoute"];
export type Usage = Schemas["UsageOut"];

/** What the UI shows about how one answer was routed: live (RouteInfo) or stored. */
export interface RouteView {
  expert: string;
  confidence: number | null;
  reason: string;
  citations: Citation[];
  fallbacks: Fallback[];
  probabilities: Record<string, number>;
}

export function routeView(route: RouteInfo | StoredRoute): RouteView {
  return {
    expert: route.expert,
    confidence: route.confidence ?? null,
    reason: route.reason,
    citations: route.citations ?? [],
    fallbacks: route.fallbacks ?? [],
    probabilities: route.probabilities ?? {},
  };
}

/** POST /api/v1/feedback (the router issue's contract). */
export interface FeedbackIn {
  request_id: string;
  rating: "up" | "down";
  comment: string | null;
  expected_expert: string | null;
}

export type Me = Schemas["MeOut"];
export type AuditEvent = Schemas["AuditEventOut"];
export type AuditEventDetail = Schemas["AuditEventDetail"];
export type AuditPage = Schemas["AuditPage"];
export type AuditQuery = NonNullable<paths["/api/v1/admin/audit"]["get"]["parameters"]["query"]>;
export type AuditExportQuery = NonNullable<
  paths["/api/v1/admin/audit/export"]["get"]["parameters"]["query"]
>;
export type DocumentOut = Schemas["DocumentOut"];
export type DocumentPage = Schemas["DocumentPage"];
export type IngestJob = Schemas["IngestJobOut"];
export type KeyOut = Schemas["KeyOut"];
export type KeyCreate = Schemas["KeyCreate"];
export type IssuedKey = Schemas["IssuedKeyOut"];
