"""Admin API for API keys (the same operations as `tracker keys`)."""

from __future__ import annotations

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED

from tracker.services import keys
from tracker.services.keys import Principal, Role
from tracker.web import schemas as s, views
from tracker.web.auth import requires
from tracker.web.deps import Now


class KeyController(Controller):
    path = "/keys"
    tags = ["API keys"]
    guards = [requires(Role.ADMIN)]

    @post(operation_id="CreateKey", status_code=HTTP_201_CREATED)
    async def create_key(self, data: JSONBody[s.KeyIn], now: Now) -> s.IssuedKeyOut:
        """Create a key. The response holds the key itself; it is not stored and cannot be shown again."""
        issued = await keys.create_key(data.name, data.role, now=now, expires_at=data.expires_at)
        summary = views.key_out(issued.record)
        return s.IssuedKeyOut(
            **{f: getattr(summary, f) for f in summary.__struct_fields__}, secret=issued.secret
        )

    @get(operation_id="ListKeys")
    async def list_keys(self) -> list[s.KeyOut]:
        return [views.key_out(k) for k in await keys.list_keys()]

    @delete("/{key_id:int}", operation_id="RevokeKey", status_code=200)
    async def revoke_key(
        self, key_id: FromPath[int], now: Now, principal: NamedDependency[Principal]
    ) -> s.KeyOut:
        """Revoke a key. The key making the request and the last active admin key cannot be revoked
        (409 `own_key`, `last_admin_key`)."""
        return views.key_out(await keys.revoke_key(key_id, now=now, by=principal))
