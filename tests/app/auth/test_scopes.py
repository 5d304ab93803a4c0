"""The scope model: SMART v1, v2 and granular scopes in one grammar (SAL-SCOPES)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.auth.scopes import ScopeSet, known_roles, parse_one, role_ceiling


def test_v1_is_normalised_and_echoed() -> None:
    s = ScopeSet.parse("patient/Encounter.read user/*.write system/Claim.*")
    assert s.allows("r", "Encounter") and s.allows("s", "Encounter")
    assert s.allows("c", "Encounter")  # from user/*.write
    assert s.allows("c", "Patient") and s.allows("u", "Patient") and s.allows("d", "Patient")
    assert not s.allows("r", "Patient") and not s.allows("s", "Patient")  # write does not imply read
    assert all(s.allows(i, "Claim") for i in "cruds")
    assert str(s) == "patient/Encounter.read user/*.write system/Claim.*"
    assert [r.v2 for r in s.resources] == ["patient/Encounter.rs", "user/*.cud", "system/Claim.cruds"]


def test_v2_letters_must_be_in_order_and_known() -> None:
    assert parse_one("patient/Observation.rs") is not None
    for bad in ("patient/Observation.sr", "patient/Observation.dus", "patient/Observation.", "patient/Observation.x",
                "Patient/Observation.rs", "patient/observation.rs", "admin/*.rs", "patient/Observation.read?x=1"):
        assert parse_one(bad) is None, bad
    s = ScopeSet.parse("patient/Observation.sr openid bogus")
    assert s.ignored == ("patient/Observation.sr", "bogus") and s.has("openid") and not s.resources


def test_granular_restrictions() -> None:
    s = ScopeSet.parse("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory "
                       "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs "
                       "patient/Condition.rs")
    filters = s.restrictions("Observation", "s")
    assert filters == [{"category": "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"},
                       {"category": "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"}]
    assert s.restrictions("Condition", "s") is None
    assert s.restrictions("Patient", "r") == []
    assert s.allows("s", "Observation") and not s.allows("c", "Observation")
    assert ScopeSet.parse(s.resources[0].v2).resources[0].params == s.resources[0].params


def test_patient_scoped() -> None:
    s = ScopeSet.parse("patient/*.rs user/Practitioner.rs")
    assert s.patient_scoped("r", "Observation")
    assert not s.patient_scoped("r", "Practitioner")
    assert not s.patient_scoped("c", "Observation")  # not granted at all
    assert s.has_patient_scopes and not ScopeSet.parse("system/*.rs").has_patient_scopes


def test_covers_for_refresh_and_downscoping() -> None:
    granted = ScopeSet.parse("patient/*.rs openid offline_access user/Claim.cruds")
    assert granted.covers(ScopeSet.parse("patient/Observation.r openid"))
    assert granted.covers(ScopeSet.parse("patient/Observation.rs?category=x|y"))
    assert granted.covers(granted)
    assert not granted.covers(ScopeSet.parse("patient/*.cruds"))
    assert not granted.covers(ScopeSet.parse("user/Observation.rs"))
    assert not granted.covers(ScopeSet.parse("launch/patient"))
    restricted = ScopeSet.parse("patient/Observation.rs?category=x|y")
    assert not restricted.covers(ScopeSet.parse("patient/Observation.rs"))


def test_within_narrows_to_ceilings() -> None:
    requested = ScopeSet.parse("user/*.cruds openid __admin launch/patient")
    got = requested.within(role_ceiling("biller"))
    assert got.allows("c", "Claim") and got.allows("r", "Patient") and not got.allows("c", "Patient")
    assert not got.has("__admin") and got.has("openid")
    assert ScopeSet.parse("patient/*.rs").within(role_ceiling("clinician")) == ScopeSet.parse("patient/*.rs")
    assert not ScopeSet.parse("system/*.rs").within(role_ceiling("admin"))


def test_roles() -> None:
    assert set(known_roles()) >= {"admin", "biller", "clinician", "auditor"}
    assert role_ceiling("admin").has("__admin")
    assert not any(role_ceiling(r).has("__admin") for r in ("biller", "clinician", "auditor"))
    assert role_ceiling("auditor").allows("s", "AuditEvent") and not role_ceiling("auditor").allows("r", "Patient")
    assert not role_ceiling("clinician").allows("c", "Claim")
    assert not any(role_ceiling(r).allows(i, "AuditEvent") for r in known_roles() for i in "ud" if r != "admin")
    with pytest.raises(ValueError):
        role_ceiling("root")


types = st.sampled_from(["*", "Patient", "Observation", "Claim"])
contexts = st.sampled_from(["patient", "user", "system"])
perms = st.sets(st.sampled_from("cruds"), min_size=1).map(lambda s: "".join(c for c in "cruds" if c in s))


@given(contexts, types, perms)
def test_v2_round_trip_and_semantics(context: str, rtype: str, perm: str) -> None:
    text = f"{context}/{rtype}.{perm}"
    s = ScopeSet.parse(text)
    assert str(s) == text and s.resources[0].v2 == text
    for interaction in "cruds":
        assert s.allows(interaction, "Observation") == (interaction in perm and rtype in ("*", "Observation"))


@given(st.lists(st.tuples(contexts, types, perms), min_size=1, max_size=4),
       st.lists(st.tuples(contexts, types, perms), min_size=1, max_size=4))
def test_within_never_exceeds_the_ceiling(req: list, cap: list) -> None:
    requested = ScopeSet.parse(" ".join(f"{c}/{t}.{p}" for c, t, p in req))
    ceiling = ScopeSet.parse(" ".join(f"{c}/{t}.{p}" for c, t, p in cap))
    granted = requested.within(ceiling)
    assert ceiling.covers(granted)
    for interaction in "cruds":
        for rtype in ("Patient", "Observation", "Claim"):
            if granted.allows(interaction, rtype):
                assert requested.allows(interaction, rtype) and ceiling.allows(interaction, rtype)
