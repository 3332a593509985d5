"""/api/v1/admin/users and /teams through the real app (SQLite): roles on every route,
each change audited, a disabled user's key refused at once."""

from __future__ import annotations

import httpx

from backend.audit.types import Actor
from backend.errors import Forbidden
from backend.identity.users import UserAdmin, UserChange
from backend.runtime import Runtime
from tests.conftest import audit_events, auth, demote_each_other, make_key


async def user_id(http: httpx.AsyncClient, admin: str, email: str) -> int:
    users = (await http.get("/api/v1/admin/users", headers=auth(admin))).json()
    return int(next(u["id"] for u in users if u["email"] == email))


async def test_admin_edits_a_user_and_the_change_is_audited(http: httpx.AsyncClient, runtime: Runtime) -> None:
    admin = await make_key(runtime, "root@example.com", roles={"admin"})
    await make_key(runtime, "ana@example.com", team="eng", groups={"staff"})
    ana = await user_id(http, admin, "ana@example.com")
    r = await http.patch(
        f"/api/v1/admin/users/{ana}",
        headers=auth(admin),
        json={"roles": ["user", "auditor"], "groups": ["staff", "legal-readers"], "team": "ops"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["roles"], body["groups"], body["team"], body["active_keys"]) == (
        ["auditor", "user"], ["legal-readers", "staff"], "ops", 1,
    )  # fmt: skip
    [event] = await audit_events(runtime, action="user.updated")
    assert event.user_email == "root@example.com" and event.payload["email"] == "ana@example.com"
    assert event.payload["changed"]["team"] == {"from": "eng", "to": "ops"}
    assert set(event.payload["changed"]) == {"roles", "groups", "team"}
    teams = {t["name"]: t["members"] for t in (await http.get("/api/v1/admin/teams", headers=auth(admin))).json()}
    assert teams == {"eng": 0, "ops": 1}


async def test_a_disabled_users_key_is_refused_until_enabled(http: httpx.AsyncClient, runtime: Runtime) -> None:
    admin = await make_key(runtime, "root@example.com", roles={"admin"})
    ana_key = await make_key(runtime, "ana@example.com")
    ana = await user_id(http, admin, "ana@example.com")
    assert (await http.get("/api/v1/me", headers=auth(ana_key))).status_code == 200
    r = await http.patch(f"/api/v1/admin/users/{ana}", headers=auth(admin), json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert (await http.get("/api/v1/me", headers=auth(ana_key))).status_code == 401
    await http.patch(f"/api/v1/admin/users/{ana}", headers=auth(admin), json={"disabled": False})
    assert (await http.get("/api/v1/me", headers=auth(ana_key))).status_code == 200
    assert [e.payload["changed"]["disabled"]["to"] for e in await audit_events(runtime, action="user.updated")] == [
        True,
        False,
    ]


async def test_roles_on_the_routes(http: httpx.AsyncClient, runtime: Runtime) -> None:
    admin = await make_key(runtime, "root@example.com", roles={"admin"})
    auditor = await make_key(runtime, "audrey@example.com", roles={"auditor"})
    user = await make_key(runtime, "ana@example.com")
    ana = await user_id(http, admin, "ana@example.com")
    assert (await http.get("/api/v1/admin/users", headers=auth(auditor))).status_code == 200
    assert (await http.get("/api/v1/admin/teams", headers=auth(auditor))).status_code == 200
    assert (await http.get("/api/v1/admin/users", headers=auth(user))).status_code == 403
    r = await http.patch(f"/api/v1/admin/users/{ana}", headers=auth(auditor), json={"disabled": True})
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required"
    assert (await http.post("/api/v1/admin/teams", headers=auth(auditor), json={"name": "x"})).status_code == 403
    assert await audit_events(runtime, action="user.updated") == []


async def test_bad_edits_are_refused_with_a_reason(http: httpx.AsyncClient, runtime: Runtime) -> None:
    admin = await make_key(runtime, "root@example.com", roles={"admin"})
    me = await user_id(http, admin, "root@example.com")
    r = await http.patch(f"/api/v1/admin/users/{me}", headers=auth(admin), json={"roles": ["user"]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "user_id"
    r = await http.patch(f"/api/v1/admin/users/{me}", headers=auth(admin), json={"disabled": True})
    assert r.status_code == 400
    r = await http.patch(f"/api/v1/admin/users/{me}", headers=auth(admin), json={"roles": ["owner"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    r = await http.patch("/api/v1/admin/users/9999", headers=auth(admin), json={"disabled": True})
    assert r.status_code == 404


async def test_teams_are_created_and_deleted_members_kept(http: httpx.AsyncClient, runtime: Runtime) -> None:
    admin = await make_key(runtime, "root@example.com", roles={"admin"})
    ana = await make_key(runtime, "ana@example.com", team="eng")
    assert (await http.get("/api/v1/me", headers=auth(ana))).json()["team"] == "eng"  # now cached
    r = await http.post("/api/v1/admin/teams", headers=auth(admin), json={"name": "ops"})
    assert r.status_code == 201 and r.json()["members"] == 0
    again = await http.post("/api/v1/admin/teams", headers=auth(admin), json={"name": "ops"})
    assert again.status_code == 400 and again.json()["error"]["param"] == "name"
    eng = next(t for t in (await http.get("/api/v1/admin/teams", headers=auth(admin))).json() if t["name"] == "eng")
    assert (await http.delete(f"/api/v1/admin/teams/{eng['id']}", headers=auth(admin))).status_code == 204
    users = {u["email"]: u for u in (await http.get("/api/v1/admin/users", headers=auth(admin))).json()}
    assert users["ana@example.com"]["team"] is None
    assert (await http.get("/api/v1/me", headers=auth(ana))).json()["team"] is None
    [deleted] = await audit_events(runtime, action="team.deleted")
    assert deleted.payload == {"team_id": eng["id"], "team": "eng", "members": 1}
    assert len(await audit_events(runtime, action="team.created")) == 1


async def test_an_admin_demoted_elsewhere_cannot_take_the_other_admins_role(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    ana_key = await make_key(runtime, "ana@example.com", roles={"admin"})
    bob_key = await make_key(runtime, "bob@example.com", roles={"admin"})
    ana = await user_id(http, ana_key, "ana@example.com")  # ana's key is now in the key cache, as an admin
    bob = await user_id(http, bob_key, "bob@example.com")
    # Bob demotes Ana through another API process: committed, but not forgotten by this one's cache.
    async with runtime.db.transaction() as session:
        await UserAdmin(session, runtime.audit).update_user(
            Actor("api", user_id=bob), ana, UserChange(roles=frozenset({"user"}))
        )
    r = await http.patch(f"/api/v1/admin/users/{bob}", headers=auth(ana_key), json={"roles": ["user"]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required", r.text
    users = {u["email"]: u["roles"] for u in (await http.get("/api/v1/admin/users", headers=auth(bob_key))).json()}
    assert users == {"ana@example.com": ["user"], "bob@example.com": ["admin"]}


async def test_two_admins_demoting_each_other_on_sqlite_leave_one_admin(runtime: Runtime) -> None:
    refused, roles = await demote_each_other(runtime.db, runtime.audit)
    assert isinstance(refused, Forbidden) and refused.code == "admin_required"
    assert roles == {"ana@example.com": ["admin"], "bob@example.com": ["user"]}
