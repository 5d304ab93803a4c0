"""The map directory pyx12 validates with: its own maps, plus the guides it ships none for.

pyx12 reads every map (the index, the control segments, the data element dictionary and each
transaction map) from one directory. Its package has no 276 005010X212 map, so the product keeps
that transaction's ST loop as data (``data/pyx12/``, transcribed from the TR3) and, once per
process, assembles a private directory: pyx12's files linked in, its ``maps.xml`` with our guides
added, and each of our ST loops grafted into pyx12's own 5010 control map (so the envelope
definitions stay pyx12's). Nothing of pyx12's is kept in the repository.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path

_DATA = Path(__file__).parent / "data" / "pyx12"
_CONTROL = "x12.control.00501.xml"


@dataclass(frozen=True)
class Guide:
    """A 5010 guide pyx12 lacks: where its ST loop is and how the index names it."""

    transaction: str  # ST01
    version: str  # GS08
    functional_id: str  # GS01
    name: str
    st_loop: str  # file under data/pyx12

    @property
    def map_file(self) -> str:
        return self.st_loop.replace(".st_loop.xml", ".xml")


#: Guides the product adds to pyx12's.
GUIDES = (Guide("276", "005010X212", "HR", "HIPAA Health Care Claim Status Request X212-276",
                "276.5010.X212.st_loop.xml"),)

_lock = threading.Lock()
_built: str | None = None


def map_path() -> str:
    """The assembled directory (built on first use; rebuilt if something removed it)."""
    global _built
    with _lock:
        if _built is None or not os.path.isdir(_built):
            _built = _assemble()
            atexit.register(shutil.rmtree, _built, True)
        return _built


def _assemble() -> str:
    target = Path(tempfile.mkdtemp(prefix="therabridge-pyx12-"))
    with as_file(files("pyx12") / "map") as source:
        for entry in source.iterdir():
            if entry.suffix == ".xml" and entry.name != "maps.xml":
                os.symlink(entry, target / entry.name)
        index = ET.parse(source / "maps.xml")
        control = source / _CONTROL
        for guide in GUIDES:
            ET.ElementTree(_transaction_map(guide, control)).write(target / guide.map_file, encoding="utf-8",
                                                                   xml_declaration=True)
    _register(index.getroot(), GUIDES)
    index.write(target / "maps.xml", encoding="utf-8", xml_declaration=True)
    return str(target)


def _transaction_map(guide: Guide, control: Path) -> ET.Element:
    """pyx12's control map with the guide's ST loop inside the functional group, GS01/GS08 narrowed
    to the guide's."""
    root = ET.parse(control).getroot()
    root.set("xid", guide.transaction)
    name = root.find("name")
    if name is not None:
        name.text = guide.name
    group = root.find("./loop[@xid='ISA_LOOP']/loop[@xid='GS_LOOP']")
    if group is None:
        raise RuntimeError(f"pyx12's {_CONTROL} has no GS loop")
    for seq, value in (("GS01", guide.functional_id), ("GS08", guide.version)):
        codes = group.find(f"./segment[@xid='GS']/element[@xid='{seq}']/valid_codes")
        if codes is not None:
            for code in list(codes):
                codes.remove(code)
            ET.SubElement(codes, "code").text = value
    st_loop = ET.parse(_DATA / guide.st_loop).getroot()
    after_gs = list(group).index(group.find("./segment[@xid='GS']")) + 1
    group.insert(after_gs, st_loop)
    return root


def _register(index: ET.Element, guides: tuple[Guide, ...]) -> None:
    """Add each guide to the 00501 version of pyx12's map index, ahead of the control entry."""
    version = index.find("./version[@icvn='00501']")
    if version is None:
        version = ET.SubElement(index, "version", icvn="00501")
    for guide in guides:
        entry = ET.Element("map", vriic=guide.version, fic=guide.functional_id, abbr=guide.transaction)
        entry.text = guide.map_file
        version.insert(0, entry)


__all__ = ["GUIDES", "Guide", "map_path"]
