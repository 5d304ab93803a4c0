"""Property tests for search parsing and transaction reference rewriting."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from app.fhir.dates import parse_range
from app.fhir.errors import FhirError
from app.fhir.registry import registry
from app.fhir.search_params import TokenValue, parse_search, parse_value, split_escaped
from app.fhir.transactions import rewrite_references

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
plain = st.text(alphabet="abcXYZ019:/._-", min_size=1, max_size=12)


def escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")


@given(st.lists(text, min_size=1, max_size=5))
def test_escaped_values_split_back(values):
    assert split_escaped(",".join(escape(v) for v in values), ",") == values


@given(text, text)
def test_token_system_code_round_trip(system, code):
    v = parse_value("identifier", "token", f"{escape(system)}|{escape(code)}")
    assert isinstance(v, TokenValue) and v.system_given
    assert (v.system or "") == system and (v.code or "") == code


@given(st.dates(), st.sampled_from(["%Y", "%Y-%m", "%Y-%m-%d", "%Y-%m-%dT10:20:30Z", "%Y-%m-%dT10:20:30.5+05:30"]))
def test_date_ranges_are_ordered_and_contain_the_day(d, fmt):
    if d.year < 1000:
        return
    start, end = parse_range(d.strftime(fmt))
    assert start <= end


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(["identifier", "name", "birthdate", "gender", "organization", "_id",
                                           "_lastUpdated", "_count", "_sort", "_include", "name:exact",
                                           "birthdate:missing", "unknown", "_total", "_summary"]), text),
                max_size=6))
def test_parser_accepts_or_rejects_cleanly(items):
    reg = registry()
    try:
        q = parse_search(reg.get("Patient"), items, registry=reg)
    except FhirError as err:
        assert err.status == 400 and err.issues
        return
    applied = {k for k, _ in q.applied}
    assert not applied & set(q.ignored)
    assert 0 <= q.count <= 1000


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), text)
json_tree = st.recursive(json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                           st.dictionaries(plain, kids, max_size=3)), max_leaves=15)


@given(json_tree, st.dictionaries(st.uuids().map(lambda u: f"urn:uuid:{u}"),
                                  st.tuples(st.sampled_from(["Patient", "Encounter"]), plain).map("/".join),
                                  min_size=1, max_size=3), st.data())
def test_rewrite_replaces_every_placeholder_and_nothing_else(tree, mapping, data):
    placeholder = data.draw(st.sampled_from(sorted(mapping)))
    doc = {"a": tree, "ref": {"reference": placeholder}, "list": [placeholder, {"x": tree}]}
    out = rewrite_references(doc, mapping)
    assert out["ref"]["reference"] == mapping[placeholder]
    assert out["list"][0] == mapping[placeholder]
    assert rewrite_references(tree, {}) == tree
    flat = str(out)
    for key in mapping:
        assert f"'{key}'" not in flat


@pytest.mark.parametrize("bad", ["2024-1", "24-01-01", "2024-01-01T25:00", "2024-02-30"])
def test_bad_dates_rejected(bad):
    with pytest.raises(ValueError):
        parse_range(bad)
