"""HTML for the login, consent and error pages of the authorization endpoint.

Plain server-rendered forms, no scripts. Contract relied on by tests and by Inferno testers:
login has inputs ``username`` and ``password``; consent's approving button is
``name="decision" value="approve"`` and, when a patient must be chosen, a ``<select name="patient">``.
"""
from __future__ import annotations

from html import escape
from typing import Iterable

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
          "label{display:block;margin:.8rem 0 .2rem}input,select{width:100%;padding:.4rem}"
          "button{margin:1rem .5rem 0 0;padding:.5rem 1rem}.error{color:#a00}li{margin:.2rem 0}")


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_STYLE}</style>'
            f"</head><body><h1>{escape(title)}</h1>{body}</body></html>")


def login_page(*, request_id: str, client_name: str, error: str | None = None) -> str:
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return _page("Sign in to TheraBridge", (
        f"<p>{escape(client_name)} asks to access TheraBridge on your behalf.</p>{message}"
        '<form method="post" action="login">'
        f'<input type="hidden" name="req" value="{escape(request_id)}">'
        '<label for="username">Username</label>'
        '<input id="username" name="username" autocomplete="username" required>'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" autocomplete="current-password" required>'
        '<button type="submit">Sign in</button></form>'))


def practice_page(*, request_id: str, client_name: str, username: str,
                  practices: list[tuple[str, str]]) -> str:
    """Chooser for people who work for several practices: ``<select name="practice">``."""
    options = "".join(f'<option value="{escape(pid)}">{escape(label)}</option>' for pid, label in practices)
    return _page("Choose a practice", (
        f"<p>Signed in as <strong>{escape(username)}</strong>. {escape(client_name)} will see only "
        "the practice you choose; you can switch later without signing in again.</p>"
        '<form method="post" action="practice">'
        f'<input type="hidden" name="req" value="{escape(request_id)}">'
        '<label for="practice">Practice</label>'
        f'<select id="practice" name="practice" required autofocus>{options}</select>'
        '<button type="submit">Continue</button></form>'))


def consent_page(*, request_id: str, client_name: str, username: str, scopes: Iterable[str],
                 patients: list[tuple[str, str]] | None, offline: bool, error: str | None = None,
                 practice: str | None = None) -> str:
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    items = "".join(
        f'<li><label><input type="checkbox" name="scope" value="{escape(s)}" checked> {escape(s)}</label></li>'
        for s in scopes)
    chooser = ""
    if patients is not None:
        options = "".join(f'<option value="{escape(pid)}">{escape(label)}</option>' for pid, label in patients)
        chooser = ('<label for="patient">Patient</label>'
                   f'<select id="patient" name="patient" required>{options}</select>')
    offline_note = ("<p>This app asks for <strong>offline access</strong>: it can keep accessing these data "
                    "after you sign out, until you revoke it.</p>") if offline else ""
    return _page("Allow access?", (
        f"<p>Signed in as <strong>{escape(username)}</strong>.</p>"
        + (f"<p>Practice: <strong>{escape(practice)}</strong></p>" if practice else "") +
        f"<p><strong>{escape(client_name)}</strong> asks for:</p>{message}"
        '<form method="post" action="consent">'
        f'<input type="hidden" name="req" value="{escape(request_id)}">'
        '<input type="hidden" name="scopes_selected" value="1">'
        f"<ul>{items}</ul>{chooser}{offline_note}"
        '<button type="submit" name="decision" value="approve">Allow</button>'
        '<button type="submit" name="decision" value="deny">Deny</button></form>'))


def error_page(message: str) -> str:
    return _page("Authorization error", f'<p class="error" role="alert">{escape(message)}</p>')
