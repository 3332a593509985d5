import { useEffect, useMemo, useState } from "react";

import { Api } from "./api/client";
import type { Me, ModelCard } from "./api/types";
import { ChatPage } from "./chat/ChatPage";
import { ConsolePage } from "./console/ConsolePage";
import { navigate, parsePath, usePath } from "./location";
import { useSession, watchRefusals } from "./session";
import { SignIn } from "./SignIn";

/** Who is signed in: from GET /api/v1/me when the server has it. */
export type Identity = { known: true; me: Me } | { known: false };

export function App() {
  const { session, auth, signInWithKey, signOut, expired, endedBecause } = useSession();
  const path = usePath();
  const view = parsePath(path);
  // Any 401 on this session (key revoked, SSO session ended) signs out, saying why.
  const api = useMemo(
    () => (session ? new Api({ key: session.kind === "key" ? session.key : null, fetch: watchRefusals(expired) }) : null),
    [session, expired],
  );
  const [models, setModels] = useState<ModelCard[]>([]);
  const [identity, setIdentity] = useState<Identity>({ known: false });
  const [sidebarOpen, setSidebarOpen] = useState(false);

  useEffect(() => {
    if (!api) return;
    // A 401 here (key revoked or session ended meanwhile) has already signed out, with its reason.
    api.models().then(setModels, () => undefined);
    api.me().then(
      (me) => setIdentity({ known: true, me }),
      () => setIdentity({ known: false }),
    );
  }, [api]);

  if (!api) return <SignIn onSignedIn={signInWithKey} ssoUrl={auth?.oidc_enabled ? auth.login_url : null} notice={endedBecause} />;

  const roles = identity.known ? identity.me.roles : [];
  // Without /api/v1/me the role is unknown: offer the console and let the API decide.
  const mayConsole = !identity.known || ["admin", "auditor", "reviewer"].some((r) => roles.includes(r));

  return (
    <div className="app">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        {view.page === "chat" && (
          <button
            type="button"
            className="ghost menu"
            aria-expanded={sidebarOpen}
            aria-label="Conversations"
            onClick={() => setSidebarOpen((o) => !o)}
          >
            ☰
          </button>
        )}
        <a
          className="brand"
          href="/"
          onClick={(e) => {
            e.preventDefault();
            navigate("/");
          }}
        >
          expertgate
        </a>
        <nav aria-label="Main" className="topnav">
          <a
            href="/"
            aria-current={view.page === "chat" ? "page" : undefined}
            onClick={(e) => {
              e.preventDefault();
              navigate("/");
            }}
          >
            Chat
          </a>
          {mayConsole && (
            <a
              href="/console"
              aria-current={view.page === "console" ? "page" : undefined}
              onClick={(e) => {
                e.preventDefault();
                navigate("/console");
              }}
            >
              Console
            </a>
          )}
        </nav>
        <span className="who muted small" data-testid="who">
          {identity.known ? identity.me.email : ""}
        </span>
        <button type="button" className="ghost small" onClick={() => void signOut()}>
          Sign out
        </button>
      </header>
      {view.page === "chat" ? (
        <ChatPage
          api={api}
          models={models}
          conversationId={view.conversationId}
          sidebarOpen={sidebarOpen}
          onCloseSidebar={() => setSidebarOpen(false)}
        />
      ) : (
        <ConsolePage
          api={api}
          models={models}
          tab={view.tab}
          detail={view.detail}
          roles={identity.known ? identity.me.roles : null}
        />
      )}
    </div>
  );
}
