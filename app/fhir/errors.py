"""The one error currency of the FHIR API: :class:`FhirError` carries an OperationOutcome.

Everything below the routes raises ``FhirError`` (or a subclass of it); the app converts it
once, at the edge, into a response whose status comes from the issue code table here
(R4 http.html "Summary" tables; OperationOutcome issue codes from the ``issue-type`` value set).

    FhirError
     ├── NotFound (404)   ├── Gone (410)   ├── Conflict (409)   ├── PreconditionFailed (412)
     └── any other status via FhirError(status, code, diagnostics, expression)
"""
from __future__ import annotations

from typing import Any, Iterable

# issue-type code -> default HTTP status, used when a caller gives no explicit status.
STATUS_FOR_CODE: dict[str, int] = {
    "invalid": 400,
    "structure": 400,
    "required": 400,
    "value": 400,
    "code-invalid": 400,
    "invariant": 422,
    "login": 401,
    "unknown": 401,
    "expired": 401,
    "forbidden": 403,
    "security": 403,
    "not-found": 404,
    "deleted": 410,
    "not-supported": 405,
    "conflict": 409,
    "duplicate": 409,
    "multiple-matches": 412,
    "too-long": 413,
    "too-costly": 429,
    "throttled": 429,
    "business-rule": 422,
    "processing": 422,
    "exception": 500,
    "timeout": 504,
    "transient": 503,
}


def issue(
    code: str,
    diagnostics: str,
    *,
    severity: str = "error",
    expression: Iterable[str] | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One OperationOutcome.issue as a dict, in element order."""
    out: dict[str, Any] = {"severity": severity, "code": code}
    if details:
        out["details"] = details
    out["diagnostics"] = diagnostics
    if expression:
        out["expression"] = list(expression)
    return out


def outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": issues}


class FhirError(Exception):
    """An error a FHIR client should see, with its status and OperationOutcome issues."""

    def __init__(
        self,
        status: int | None,
        code: str,
        diagnostics: str,
        *,
        expression: Iterable[str] | None = None,
        issues: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status or STATUS_FOR_CODE.get(code, 400)
        self.issues = issues or [issue(code, diagnostics, expression=expression)]
        self.headers = headers or {}

    @property
    def outcome(self) -> dict[str, Any]:
        return outcome(self.issues)


class NotFound(FhirError):
    def __init__(self, diagnostics: str) -> None:
        super().__init__(404, "not-found", diagnostics)


class Gone(FhirError):
    def __init__(self, diagnostics: str, *, version_id: int | None = None) -> None:
        super().__init__(410, "deleted", diagnostics)
        if version_id is not None:
            self.headers["ETag"] = f'W/"{version_id}"'


class Conflict(FhirError):
    def __init__(self, diagnostics: str) -> None:
        super().__init__(409, "conflict", diagnostics)


class PreconditionFailed(FhirError):
    def __init__(self, diagnostics: str, *, code: str = "conflict") -> None:
        super().__init__(412, code, diagnostics)


def invalid(diagnostics: str, *expression: str, status: int = 400, code: str = "invalid") -> FhirError:
    return FhirError(status, code, diagnostics, expression=expression or None)
