"""The assembled pyx12 map directory: pyx12's own maps plus the product's 276 005010X212."""
from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from payer_adapters.x12 import encode_276
from payer_adapters.x12.pyx12_maps import GUIDES, map_path
from payer_adapters.x12.validate import pyx12_available_for, pyx12_errors

from . import builders as B
from .conftest import NOW
from .test_276_277 import HEAD, claim_loop, subscriber, x277


def test_index_keeps_pyx12s_guides_and_adds_ours():
    index = ET.parse(Path(map_path()) / "maps.xml").getroot()
    entries = {(m.get("fic"), m.get("vriic")): m.text for m in index.iterfind("./version[@icvn='00501']/map")}
    assert entries[("HC", "005010X222A1")] == "837.5010.X222.A1.xml"  # pyx12's, untouched
    for guide in GUIDES:
        assert entries[(guide.functional_id, guide.version)] == guide.map_file
        assert (Path(map_path()) / guide.map_file).is_file()


def test_a_removed_directory_is_rebuilt(partner, numbers):
    out = encode_276(B.medicare_ot_bundle(), partner, numbers, now=NOW)
    shutil.rmtree(map_path())  # e.g. a temp cleaner on a long-running server
    assert pyx12_errors(out) == []


def test_277_x212_stays_with_our_decoder():
    """pyx12's 277 X212 map is not registered; a 277 is not handed to pyx12."""
    answer = x277(HEAD + subscriber(4, "1EG4TE5MK73", "DOE", "JANE") + claim_loop("PCN1", "F2:585"))
    assert not pyx12_available_for(answer) and pyx12_errors(answer) is None
