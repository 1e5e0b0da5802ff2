"""quart-auth: a copy of its token check, and where it keeps the request's user.

``QuartAuth.load_token`` (copied into ``verify_token``)
    ``security.auth.AppAuth.load_token`` remembers the tokens whose signature checked out:
    checking one takes about 130 Python calls (3% of an authenticated read), and a
    client sends the same token on every request. To judge a remembered token's expiry
    as quart-auth does, it needs the time the token was signed, which quart-auth's
    ``load_token`` does not return; so ``verify_token`` is quart-auth 0.12's
    ``load_token`` (the same keys, fallbacks first, ``serializer_class``, ``salt`` and
    ``duration``) asking itsdangerous for that time as well. Once quart-auth changes its
    check (new keys, another serializer, another expiry rule), the copy must follow:
    ``tests/test_upstream.py`` pins the upstream function's source and compares both
    on valid, expired, forged and fallback-key tokens.

``QuartAuth.after_request`` (skipped in ``security.auth.AppAuth`` while ``user_untouched``)
    quart-auth writes or clears the auth cookie after every request, resolving the
    request's user to do so. It changes the cookie only for a user whose ``action`` is
    not ``PASS``, and such a user is on ``g`` under ``attribute_name`` (``load_user``,
    ``login_user``, ``logout_user`` and ``renew_login`` all put it there); without one
    there is nothing to write, so the hook and the user it would build are skipped.

No upstream report: a hook returning the signing time, or a cheaper check, would let
the copy go.
"""

from __future__ import annotations

from itsdangerous import BadSignature
from quart import Quart, g
from quart_auth import QuartAuth


def verify_token(auth: QuartAuth, token: str, app: Quart) -> tuple[str, float] | None:
    """The auth id signed into *token* and when it was signed (a Unix time), or ``None``.

    quart-auth's ``load_token`` check, made with *auth*'s settings and *app*'s keys:
    ``None`` for a bad signature and for a token older than ``duration``.
    """
    keys = [*(app.config.get("SECRET_KEY_FALLBACKS") or ()), app.secret_key]
    assert auth.salt is not None  # set by init_app
    try:
        auth_id, signed_at = auth.serializer_class(keys, auth.salt).loads(
            token, max_age=auth.duration, return_timestamp=True
        )
    except BadSignature:  # SignatureExpired is one
        return None
    return auth_id, signed_at.timestamp()


def user_untouched(auth: QuartAuth) -> bool:
    """True when nothing in this request has loaded, signed in or signed out a user."""
    return auth.attribute_name not in g
