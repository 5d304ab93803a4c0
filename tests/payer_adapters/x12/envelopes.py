"""Wrap hand-written transaction set bodies in ISA/GS/ST … SE/GE/IEA with chosen control numbers,
so a test can deliver the same content again in a new envelope."""
from __future__ import annotations


def interchange(gs01: str, version: str, st01: str, bodies: list[list[str]], *, isa13: int = 777,
                gs06: int = 777, st02: int = 1, repetition: str = "^", isa12: str = "00501",
                sender: str = "CLEARHOUSE01") -> str:
    """One interchange, one group, one set per body (ST02 = ``st02``, ``st02 + 1``, …)."""
    isa = (f"ISA*00*          *00*          *ZZ*{sender:<15}*ZZ*THERABRIDGE    *250115*1032*{repetition}*"
           f"{isa12}*{isa13:09d}*0*T*:~\n")
    sets = []
    for n, body in enumerate(bodies):
        control = f"{st02 + n:04d}"
        st = [f"ST*{st01}*{control}*{version}", *body]
        sets.append("".join(s + "~\n" for s in st) + f"SE*{len(st) + 1}*{control}~\n")
    return (isa + f"GS*{gs01}*{sender}*THERABRIDGE*20250115*1032*{gs06}*X*{version}~\n" + "".join(sets)
            + f"GE*{len(bodies)}*{gs06}~\nIEA*1*{isa13:09d}~\n")


def bht03_of_our_837(isa13: int, st02: int) -> str:
    """The BHT03 our 837P encoder writes (ISA13 + ST02), which a 277CA echoes in 2200B TRN02."""
    return f"{isa13:09d}{st02:04d}"[-30:]
