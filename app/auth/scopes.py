"""SMART scopes: one model for v1, v2 and granular scopes (SAL-SCOPES).

Grammar: ``(patient|user|system) "/" (ResourceType|*) "." permissions ["?" param=value("&"…)]``
where permissions are v2 ``c?r?u?d?s?`` (in that order, non-empty) or v1 ``read|write|*``.
v1 is normalised on parse (``read`` ⇒ ``rs``, ``write`` ⇒ ``cud``, ``*`` ⇒ ``cruds``), but a
scope keeps the text it was requested with, so a granted v1 scope is echoed as v1 (SHOULD).

Interactions are v2's letters: ``c`` create, ``r`` read/vread/instance history, ``u``
update/patch, ``d`` delete, ``s`` search and type/system history. Scopes union; write does
not imply read; a ``?param=value`` suffix restricts the scope to resources matching it.

Everything that is not a resource scope (``openid``, ``fhirUser``, ``launch/patient``,
``offline_access``, ``__admin``, …) is kept as a plain string in :attr:`ScopeSet.other`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

INTERACTIONS = "cruds"
CONTEXTS = ("patient", "user", "system")
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}

_RESOURCE_SCOPE = re.compile(
    r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]+)\."
    r"(?P<perm>read|write|\*|c?r?u?d?s?)(?:\?(?P<query>.+))?$"
)
# Non-resource scopes we know and grant (SAL-SCOPES; ``__`` prefix = our extension).
KNOWN_OTHER = frozenset({
    "openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter",
    "offline_access", "online_access", "__admin",
})
ADMIN_SCOPE = "__admin"


@dataclass(frozen=True)
class ResourceScope:
    context: str
    resource_type: str                      # a resource type or "*"
    interactions: frozenset[str]
    params: tuple[tuple[str, str], ...] = ()  # granular restriction, AND of pairs
    text: str = ""                          # as requested (v1 form echoed back)

    @property
    def v2(self) -> str:
        """The scope in SMART v2 form."""
        perm = "".join(i for i in INTERACTIONS if i in self.interactions)
        base = f"{self.context}/{self.resource_type}.{perm}"
        return base + ("?" + urlencode(self.params, safe="|:/") if self.params else "")

    def matches(self, interaction: str, resource_type: str) -> bool:
        return interaction in self.interactions and self.resource_type in ("*", resource_type)

    def covers(self, other: ResourceScope) -> bool:
        """Whether every access ``other`` grants is granted by this scope too."""
        if self.context != other.context and not (self.context == "user" and other.context == "patient"):
            return False
        if self.resource_type != "*" and self.resource_type != other.resource_type:
            return False
        return other.interactions <= self.interactions and set(self.params) <= set(other.params)

    def narrow(self, ceiling: ResourceScope) -> ResourceScope | None:
        """The part of this (requested) scope that ``ceiling`` allows, or None."""
        if ceiling.covers(self):
            return self
        if ceiling.context != self.context and not (ceiling.context == "user" and self.context == "patient"):
            return None
        if ceiling.resource_type not in ("*", self.resource_type) and self.resource_type != "*":
            return None
        interactions = self.interactions & ceiling.interactions
        if not interactions:
            return None
        rtype = self.resource_type if self.resource_type != "*" else ceiling.resource_type
        params = tuple(sorted(set(self.params) | set(ceiling.params)))
        narrowed = ResourceScope(self.context, rtype, frozenset(interactions), params)
        return ResourceScope(narrowed.context, rtype, narrowed.interactions, params, narrowed.v2)


def parse_one(text: str) -> ResourceScope | str | None:
    """A resource scope, a known non-resource scope string, or None when not understood."""
    m = _RESOURCE_SCOPE.match(text)
    if m:
        perm = m["perm"]
        if not perm:
            return None
        letters = V1_PERMISSIONS.get(perm, perm)
        if m["query"] and perm in V1_PERMISSIONS:
            return None  # v1 scopes have no granular form
        params: tuple[tuple[str, str], ...] = ()
        if m["query"]:
            pairs = parse_qsl(m["query"], keep_blank_values=False, strict_parsing=False)
            if not pairs:
                return None
            params = tuple(sorted(pairs))
        return ResourceScope(m["context"], m["type"], frozenset(letters), params, text)
    if text in KNOWN_OTHER or text.startswith("launch/"):
        return text
    return None


@dataclass(frozen=True)
class ScopeSet:
    """A parsed scope string; implements :class:`app.security.ScopePolicy`."""

    resources: tuple[ResourceScope, ...] = ()
    other: frozenset[str] = frozenset()
    ignored: tuple[str, ...] = field(default=(), compare=False)
    # Answers per (question, interaction, type): parsed sets are shared (see ``parse``) and
    # asked the same few questions on every request.
    _memo: dict[tuple[str, str, str], Any] = field(default_factory=dict, compare=False, repr=False, hash=False)

    @classmethod
    def parse(cls, scope: str | None) -> ScopeSet:
        return _parse_cached(scope or "")

    # -- ScopePolicy -------------------------------------------------------------------------
    def allows(self, interaction: str, resource_type: str) -> bool:
        """Whether any granted scope permits ``interaction`` (c r u d s) on ``resource_type``.

        A restricted (granular) scope counts; apply :meth:`restrictions` to the results.
        """
        key = ("a", interaction, resource_type)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = any(s.matches(interaction, resource_type) for s in self.resources)
        return found

    def restrictions(self, resource_type: str, interaction: str) -> list[dict[str, str]] | None:
        """Granular filters for this access: ``None`` = unrestricted; otherwise a resource is
        allowed iff it matches ALL pairs of AT LEAST ONE returned dict (``[]`` = nothing)."""
        key = ("r", interaction, resource_type)
        if key not in self._memo:
            self._memo[key] = self._restrictions(resource_type, interaction)
        cached = self._memo[key]
        return None if cached is None else [dict(d) for d in cached]

    def _restrictions(self, resource_type: str, interaction: str) -> list[dict[str, str]] | None:
        found: list[dict[str, str]] = []
        for s in self.resources:
            if s.matches(interaction, resource_type):
                if not s.params:
                    return None
                found.append(dict(s.params))
        return found

    def patient_scoped(self, interaction: str, resource_type: str) -> bool:
        """True when this access is granted only through ``patient/`` scopes, so the caller must
        confine it to the token's patient compartment (SAL-SCOPES, patient-specific scopes)."""
        key = ("p", interaction, resource_type)
        found = self._memo.get(key)
        if found is None:
            granting = [s for s in self.resources if s.matches(interaction, resource_type)]
            found = self._memo[key] = bool(granting) and all(s.context == "patient" for s in granting)
        return found

    # -- set algebra --------------------------------------------------------------------------
    @property
    def has_patient_scopes(self) -> bool:
        return any(s.context == "patient" for s in self.resources)

    @property
    def contexts(self) -> frozenset[str]:
        return frozenset(s.context for s in self.resources)

    def has(self, name: str) -> bool:
        return name in self.other

    def covers(self, other: ScopeSet) -> bool:
        """Whether ``other`` asks for nothing beyond this set (refresh/downscoping, RFC 6749 §6)."""
        return other.other <= self.other and all(
            any(mine.covers(theirs) for mine in self.resources) for theirs in other.resources
        )

    def within(self, *ceilings: ScopeSet) -> ScopeSet:
        """This (requested) set cut down to what every ceiling allows; scopes a ceiling allows
        only partly are narrowed (``user/*.cruds`` under ``user/Claim.rs`` ⇒ ``user/Claim.rs``)."""
        current = self
        for ceiling in ceilings:
            kept: list[ResourceScope] = []
            for req in current.resources:
                for cap in ceiling.resources:
                    part = req.narrow(cap)
                    if part is not None and part not in kept:
                        kept.append(part)
                        if part is req:
                            break
            current = ScopeSet(_dedupe(kept), current.other & ceiling.other, current.ignored)
        return current

    def __str__(self) -> str:
        return " ".join([s.text or s.v2 for s in self.resources] + sorted(self.other))

    def __bool__(self) -> bool:
        return bool(self.resources or self.other)


def _dedupe(scopes: list[ResourceScope]) -> tuple[ResourceScope, ...]:
    """Drop scopes fully covered by another kept scope."""
    out: list[ResourceScope] = []
    for i, s in enumerate(scopes):
        if any(j != i and o.covers(s) and not (s.covers(o) and j > i) for j, o in enumerate(scopes)):
            continue
        out.append(s)
    return tuple(out)


@lru_cache(maxsize=4096)
def _parse_cached(scope: str) -> ScopeSet:
    resources: list[ResourceScope] = []
    other: set[str] = set()
    ignored: list[str] = []
    for text in scope.split():
        parsed = parse_one(text)
        if parsed is None:
            ignored.append(text)
        elif isinstance(parsed, str):
            other.add(parsed)
        elif parsed not in resources:
            resources.append(parsed)
    return ScopeSet(tuple(resources), frozenset(other), tuple(ignored))


@lru_cache(maxsize=1)
def _roles() -> dict[str, ScopeSet]:
    data = json.loads((Path(__file__).parent / "data" / "roles.json").read_text())
    return {role: ScopeSet.parse(" ".join(scopes)) for role, scopes in data.items() if not role.startswith("_")}


ROLES: tuple[str, ...] = ("admin", "biller", "clinician", "auditor")


def role_ceiling(role: str) -> ScopeSet:
    """The most a user of ``role`` may ever be granted (``data/roles.json``)."""
    try:
        return _roles()[role]
    except KeyError:
        raise ValueError(f"unknown role {role!r}") from None


def known_roles() -> tuple[str, ...]:
    return tuple(_roles())
