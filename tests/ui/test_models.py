"""Promote and rollback from the UI: the registry's moves, Idempotency-Key, CSRF."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.ui import corpus
from tests.ui.conftest import UiStore, csrf_of, login

Fresh = Callable[..., tuple[UiStore, FastAPI]]


def form_fields(page: str, form_class: str, version: int | None = None) -> dict[str, str]:
    """The hidden fields of one promote (of ``version``) or rollback form."""
    forms = re.findall(rf'<form class="{form_class}".*?</form>', page, re.S)
    if version is not None:
        forms = [form for form in forms if f"/versions/{version}/promote" in form]
    assert forms, form_class
    return dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', forms[0]))


def test_admin_promotes_and_rolls_back_with_a_reason(fresh: Fresh) -> None:
    built, app = fresh()
    registry = built.store.registry
    with TestClient(app, follow_redirects=False) as client:
        login(client, "admin")
        page = client.get("/ui/models/churn").text
        fields = form_fields(page, "promote", 2)
        answer = client.post(
            "/ui/models/churn/versions/2/promote",
            data={**fields, "to": "production", "reason": corpus.XSS[2]},
        )
        assert answer.status_code == 303
        # Relative, so that it also works under an API Gateway stage.
        assert answer.headers["location"] == "../../../../models/churn?done=promoted"
        assert registry.get_model("churn").aliases["production"] == 2
        last = registry.history("churn")[-1]
        assert (last.actor, last.to_version, last.reason) == ("admin", 2, corpus.XSS[2])
        shown = client.get("/ui/models/churn?done=promoted").text
        assert 'id="done"' in shown
        assert "&#34;&gt;&lt;svg onload=window.__xss=1&gt;" in shown

        fields = form_fields(shown, "rollback")
        answer = client.post(
            "/ui/models/churn/rollback",
            data={**fields, "alias": "production", "reason": "bad canary"},
        )
        assert answer.status_code == 303
        assert registry.get_model("churn").aliases["production"] == 1
        assert registry.history("churn")[-1].reason == "bad canary"


def test_a_form_sent_twice_moves_the_alias_once(fresh: Fresh) -> None:
    built, app = fresh()
    registry = built.store.registry
    with TestClient(app, follow_redirects=False) as client:
        login(client, "admin")
        fields = form_fields(client.get("/ui/models/churn").text, "promote", 2)
        data = {**fields, "to": "production", "reason": "ship it"}
        before = len(registry.history("churn"))
        for _ in range(2):
            answer = client.post("/ui/models/churn/versions/2/promote", data=data)
            assert answer.status_code == 303
        assert len(registry.history("churn")) == before + 1
        # The same key with another body is refused, as in the API.
        changed = client.post("/ui/models/churn/versions/2/promote", data={**data, "reason": "x"})
        assert changed.status_code == 422
        assert "different request" in changed.text
        assert len(registry.history("churn")) == before + 1


def test_csrf_missing_or_from_another_session_changes_nothing(fresh: Fresh) -> None:
    built, app = fresh()
    registry = built.store.registry
    with (
        TestClient(app, follow_redirects=False) as first,
        TestClient(app, follow_redirects=False) as second,
    ):
        login(first, "admin")
        login(second, "admin")
        fields = form_fields(first.get("/ui/models/churn").text, "promote", 2)
        other = csrf_of(second.get("/ui/models/churn").text)
        assert other != fields["csrf_token"]
        before = (registry.get_model("churn").aliases, registry.history("churn"))
        for token in (None, other, "", "0" * 64):
            data = {**fields, "to": "production", "reason": "sneaky"}
            if token is None:
                del data["csrf_token"]
            else:
                data["csrf_token"] = token
            answer = first.post("/ui/models/churn/versions/2/promote", data=data)
            assert answer.status_code == 403, token
            assert "CSRF" in answer.text
            answer = first.post("/ui/models/churn/rollback", data=data)
            assert answer.status_code == 403, token
        # A header token (htmx) from the other session is refused as well.
        answer = first.post(
            "/ui/models/churn/rollback",
            headers={"X-CSRF-Token": other},
            data={"idempotency_key": "k", "reason": "r"},
        )
        assert answer.status_code == 403
        assert (registry.get_model("churn").aliases, registry.history("churn")) == before


def test_registry_errors_are_shown_on_the_page(fresh: Fresh) -> None:
    built, app = fresh()
    with TestClient(app, follow_redirects=False) as client:
        login(client, "admin")
        page = client.get("/ui/models/churn").text
        fields = form_fields(page, "rollback")
        # staging has no previous version: a 409 from the registry, shown inline.
        answer = client.post(
            "/ui/models/churn/rollback", data={**fields, "alias": "staging", "reason": "r"}
        )
        assert answer.status_code == 409
        assert 'id="model-error"' in answer.text
        bad = client.post(
            "/ui/models/churn/versions/2/promote",
            data={**form_fields(page, "promote", 2), "to": "no way!", "reason": ""},
        )
        assert bad.status_code == 422
        assert "to:" in bad.text
        missing = client.post(
            "/ui/models/churn/versions/99/promote",
            data={**form_fields(page, "promote", 2), "reason": "r"},
        )
        assert missing.status_code == 404
        assert built.store.registry.get_model("churn").aliases == {"production": 1, "staging": 2}
