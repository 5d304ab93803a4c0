"""Property: any claim the mapping can produce encodes to a file pyx12 accepts (and we read back)."""
from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from payer_adapters.x12.encode_837p import clean
from payer_adapters.x12 import EncodeError, InMemoryControlNumbers, decode, encode_837p, load_partner

from . import builders as B
from .conftest import NOW
from .pyx12_check import pyx12_result

CPTS = ["97110", "97112", "97116", "97140", "97530", "97535", "97165", "97166", "97167", "97168", "92507", "97161"]
DISCIPLINE = ["GO", "GP", "GN"]
ICD = ["I69.351", "R27.8", "M54.50", "S62.101D", "W23.0XXD", "G81.91", "R26.89", "M25.511", "F80.2", "R13.12",
       "Z96.651", "M62.81", "R53.1"]
SCENARIOS = [B.medicare_ot_bundle, B.commercial_bundle, B.workers_comp_bundle, B.replacement_bundle, B.void_bundle]

money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999.99"), places=2)
line_st = st.tuples(
    st.sampled_from(CPTS), st.sampled_from(DISCIPLINE),
    st.lists(st.sampled_from(["KX", "CO", "CQ", "59", "XU"]), max_size=3, unique=True),
    st.integers(min_value=1, max_value=8), money, st.sampled_from(["11", "12", "22", "02", "10"]),
)
name = st.text(alphabet=st.characters(codec="latin-1", exclude_categories=("Cs",)), min_size=1, max_size=30)
pcn = st.from_regex(r"[A-Z0-9]{1,17}", fullmatch=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])  # pyx12 is too slow to shrink with
@given(scenario=st.sampled_from(SCENARIOS), lines=st.lists(line_st, min_size=1, max_size=6),
       dx=st.lists(st.sampled_from(ICD), min_size=1, max_size=12, unique=True), family=name, pcn=pcn,
       day=st.integers(min_value=1, max_value=28))
def test_encoded_claims_pass_pyx12(scenario, lines, dx, family, pcn, day):
    date = f"2025-03-{day:02d}"
    items = [B.line(n, code, [disc, *mods], units, float(charge), date=date,
                    pointers=[1 + (n % len(dx))], control=f"{pcn[:10]}{n:02d}", pos=pos)
             for n, (code, disc, mods, units, charge, pos) in enumerate(lines, start=1)]
    bundle = scenario(items=items, dx=dx, pcn=pcn)
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "Patient":
            e["resource"]["name"][0]["family"] = family
    try:
        out = encode_837p(bundle, load_partner("sandbox"), InMemoryControlNumbers(), now=NOW)
    except EncodeError as err:  # a name with no letters or digits left cannot be sent
        assert err.segment_id == "NM1" and err.element_position == 3
        assert not clean(family)
        return
    ok, errors = pyx12_result(out)
    assert ok and not errors, errors
    claim = decode(out).transactions[0].claims[0]
    assert claim.patient_control_number == pcn
    assert claim.total == sum((Decimal(str(float(c))) for *_, c, _ in lines), Decimal(0)).quantize(Decimal("0.01"))
    assert [ln.line_control_number for ln in claim.lines] == [f"{pcn[:10]}{n:02d}" for n in range(1, len(lines) + 1)]
