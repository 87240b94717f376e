"""DEVELOPMENT ONLY: the HTML pages of the demo's OpenID provider.

Every value that reaches a page goes through ``html.escape``. Each page carries the banner. The
forms suit a person in a browser and the scripted browser of the tests (``tests/idp/signin.py``):
the login form has ``login`` and ``password``; the consent page puts "allow" in the first form and
"deny" in a second; the device page has ``user_code``; the last device page has no form.
"""

from __future__ import annotations

from html import escape

from starlette.responses import HTMLResponse

BANNER = (
    "DEVELOPMENT ONLY: the wardgate demo's identity provider. Its passwords are known and its "
    "keys sit in the demo folder. Never use it for real accounts or expose it beyond this machine."
)
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_STYLE = (
    "body{font-family:sans-serif;margin:0}main{max-width:32rem;margin:2rem auto}"
    ".banner{background:#b00020;color:#fff;padding:.6rem 1rem;font-weight:bold}"
    ".error{color:#b00020}label{display:block;margin:.5rem 0}form{display:inline-block;"
    "margin-right:1rem}code{font-size:1.2rem}"
)


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """``body`` is HTML made by the functions below, with every value already escaped."""
    text = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} (development only)</title><style>{_STYLE}</style></head>"
        f'<body><div class="banner">{escape(BANNER)}</div><main><h1>{escape(title)}</h1>'
        f"{body}</main></body></html>"
    )
    return HTMLResponse(text, status, headers=HEADERS)


def error_page(message: str, status: int = 400) -> HTMLResponse:
    return page("Sign-in error", f'<p class="error">{escape(message)}</p>', status)


def login_page(txn: str, purpose: str, hint: str = "", error: str = "") -> HTMLResponse:
    problem = f'<p class="error">{escape(error)}</p>' if error else ""
    body = (
        f"<p>{escape(purpose)}</p>{problem}"
        f'<form method="post" action="/interaction/{escape(txn)}/login">'
        f'<label>User <input name="login" value="{escape(hint)}" autocomplete="username" '
        "autofocus></label>"
        '<label>Password <input name="password" type="password" '
        'autocomplete="current-password"></label>'
        '<button type="submit">Sign in</button></form>'
    )
    return page("Sign in", body)


def consent_page(txn: str, question: str) -> HTMLResponse:
    action = f"/interaction/{escape(txn)}/consent"
    body = f"<p>{escape(question)}</p>" + "".join(
        f'<form method="post" action="{action}">'
        f'<input type="hidden" name="decision" value="{value}">'
        f'<button type="submit">{label}</button></form>'
        for value, label in (("allow", "Allow"), ("deny", "Deny"))
    )
    return page("Allow access?", body)


def device_page(user_code: str = "", error: str = "", status: int = 200) -> HTMLResponse:
    problem = f'<p class="error">{escape(error)}</p>' if error else ""
    body = (
        "<p>Enter the code that the device (for example <code>wardgate login --device</code>) "
        f"shows.</p>{problem}"
        '<form method="post" action="/device">'
        f'<label>Code <input name="user_code" value="{escape(user_code)}" '
        'autocomplete="off" autocapitalize="characters"></label>'
        '<button type="submit">Continue</button></form>'
    )
    return page("Connect a device", body, status)


def device_done(user: str, allowed: bool) -> HTMLResponse:
    if allowed:
        text = f"Signed in as {user}. Return to your device; you can close this page."
        return page("Sign-in Success", f"<p>{escape(text)}</p>")
    return page("Sign-in refused", "<p>The device was not given access.</p>", 403)


def index_page(issuer: str, users: list[str]) -> HTMLResponse:
    body = (
        f"<p>Issuer <code>{escape(issuer)}</code>; discovery at "
        f"<code>{escape(issuer)}/.well-known/openid-configuration</code>.</p>"
        f"<p>Accounts: {escape(', '.join(users))}. Client: <code>wardgate</code> (public, "
        "PKCE S256, loopback redirects).</p>"
    )
    return page("wardgate demo identity provider", body)
