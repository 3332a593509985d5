import { useId, useState, type FormEvent } from "react";

import type { Api } from "../api/client";
import { ApiError } from "../api/errors";
import { ThumbIcon } from "./icons";

type Rating = "up" | "down";

interface Props {
  api: Api;
  requestId: string;
  expert: string;
  experts: string[];
}

/** Thumbs up/down on one answer, with an optional comment and the expert it should have gone to. */
export function Feedback({ api, requestId, expert, experts }: Props) {
  const [rating, setRating] = useState<Rating | null>(null);
  const [comment, setComment] = useState("");
  const [expected, setExpected] = useState("");
  const [state, setState] = useState<"editing" | "sending" | "sent" | "unavailable" | "error">(
    "editing",
  );
  const [error, setError] = useState<string | null>(null);
  const id = useId();

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!rating) return;
    setState("sending");
    try {
      await api.feedback({
        request_id: requestId,
        rating,
        comment: comment.trim() || null,
        expected_expert: expected || null,
      });
      setState("sent");
    } catch (err) {
      if (err instanceof ApiError && err.missingEndpoint) setState("unavailable");
      else {
        setError(err instanceof Error ? err.message : String(err));
        setState("error");
      }
    }
  }

  if (state === "sent") {
    return (
      <p className="feedback-done" role="status">
        Thanks, your feedback was sent.
      </p>
    );
  }
  if (state === "unavailable") {
    return (
      <p className="feedback-done muted" role="status">
        This server does not accept feedback yet.
      </p>
    );
  }
  const others = experts.filter((e) => e !== expert);
  return (
    <form className="feedback" onSubmit={submit} aria-label="Feedback on this answer">
      <div className="thumbs">
        <button
          type="button"
          className="ghost small"
          aria-pressed={rating === "up"}
          aria-label="Good answer"
          onClick={() => setRating("up")}
        >
          <ThumbIcon />
        </button>
        <button
          type="button"
          className="ghost small"
          aria-pressed={rating === "down"}
          aria-label="Bad answer"
          onClick={() => setRating("down")}
        >
          <ThumbIcon down />
        </button>
      </div>
      {rating && (
        <div className="feedback-form">
          <label htmlFor={`${id}-comment`}>Comment (optional)</label>
          <textarea
            id={`${id}-comment`}
            rows={2}
            value={comment}
            maxLength={2000}
            onChange={(e) => setComment(e.target.value)}
          />
          <label htmlFor={`${id}-expert`}>This should have gone to</label>
          <select id={`${id}-expert`} value={expected} onChange={(e) => setExpected(e.target.value)}>
            <option value="">{expert} (it was right)</option>
            {others.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
          <div className="row">
            <button type="submit" disabled={state === "sending"}>
              Send feedback
            </button>
            <button type="button" className="ghost" onClick={() => setRating(null)}>
              Cancel
            </button>
          </div>
          {state === "error" && (
            <p className="error" role="alert">
              {error}
            </p>
          )}
        </div>
      )}
    </form>
  );
}
