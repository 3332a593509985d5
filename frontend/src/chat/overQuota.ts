// The over-quota refusal (429 quota_exceeded, backend/quota/service.py) in words.
import type { ApiError } from "../api/errors";

const RETRY = /retry after (\d+(?:\.\d+)?) ?s\b/;

/** A wait in seconds as a person says it: "45 seconds", "3 minutes", "17 hours", "2 days". */
export function humaniseSeconds(seconds: number): string {
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? "" : "s"}`;
  const s = Math.max(1, Math.ceil(seconds));
  if (s < 60) return plural(s, "second");
  const minutes = Math.round(s / 60);
  if (minutes < 60) return plural(minutes, "minute");
  const hours = Math.round(s / 3600);
  if (hours < 48) return plural(hours, "hour");
  return plural(Math.round(s / 86400), "day");
}

/**
 * What to tell the asker about a failed answer: the usage-limit refusal in words (when
 * the server said how long to wait), any other error as the server worded it.
 */
export function answerErrorText(error: ApiError): string {
  if (error.status !== 429 || (error.code !== null && error.code !== "quota_exceeded")) return error.message;
  const match = RETRY.exec(error.message);
  if (!match) return "You have reached your usage limit; try again later.";
  return `You have reached your usage limit; you can ask again in about ${humaniseSeconds(Number(match[1]))}.`;
}
