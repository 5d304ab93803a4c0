"""X12 codec benchmark: ``python -m bench.x12`` from the repository root.

Generates an 835 with N claims (3 service lines each, balanced) and measures, each in its own
subprocess so peak memory (ru_maxrss) is per task:

* ours: typed parse (``iter_835_claims``), streaming parse to FHIR (``iter_835_fhir``), whole-file
  ``decode().to_fhir()``, and 837P encode of N claims;
* peers on the same file in the same run: a bare split on separators, pyx12's segment reader,
  x12sdk's models and linuxforhealth-x12's models (each installed into ``bench/.venv-*`` on first
  use; linuxforhealth-x12 needs pydantic 1).

Peak memory is measured for two file sizes to show whether it stays flat as the file grows.
Options: ``--claims 10000 --large 40000 --skip-peers --out bench/results/x12.json``.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "var" / "bench-x12"
PEERS = {
    "x12sdk": {"venv": ROOT / "bench" / ".venv-x12sdk", "packages": ["x12sdk"], "module": "x12sdk.io"},
    "linuxforhealth-x12": {"venv": ROOT / "bench" / ".venv-linuxforhealth",
                           "packages": ["linuxforhealth-x12", "pydantic<2"], "module": "linuxforhealth.x12.io",
                           "needs_no_payer_contact": True},
}

# -- file generation ----------------------------------------------------------------------------

CPTS = ("97110", "97530", "97140", "97112", "97535")


def generate_835(path: Path, claims: int, *, payer_contact: bool = True) -> Path:
    """A balanced 835: per line allowed 80 %, CO-45 the rest, PR-2 20 % of allowed.

    ``payer_contact=False`` leaves out the 1000A ``PER*BL`` (required by the guide) for
    linuxforhealth-x12, which cannot read it."""
    total = Decimal(0)
    body: list[str] = []
    with open(path.with_suffix(".body"), "w") as out:
        for k in range(claims):
            lines = []
            paid_sum = pr_sum = charge_sum = Decimal(0)
            for j in range(3):
                charge = Decimal(40 + j * 10 + k % 7)
                allowed = (charge * Decimal("0.8")).quantize(Decimal("0.01"))
                coins = (allowed * Decimal("0.2")).quantize(Decimal("0.01"))
                paid = allowed - coins
                paid_sum += paid
                pr_sum += coins
                charge_sum += charge
                lines.append(f"SVC*HC:{CPTS[(k + j) % 5]}:GO*{charge}*{paid}**{1 + (k + j) % 3}~\n"
                             f"DTM*472*20250114~\nCAS*CO*45*{charge - allowed}~\nCAS*PR*2*{coins}~\n"
                             f"REF*6R*P{k:09d}{j + 1:02d}~\nAMT*B6*{allowed}~\n")
            out.write(f"CLP*P{k:09d}*1*{charge_sum}*{paid_sum}*{pr_sum}*MB*ICN{k:011d}*11*1~\n"
                      f"NM1*QC*1*DOE*JANE****MI*1EG4TE5MK73~\nDTM*050*20250115~\n" + "".join(lines))
            total += paid_sum
    del body
    head = ("ISA*00*          *00*          *ZZ*TBSANDBOX      *ZZ*THERABRIDGE    *250207*0500*^*00501*000000401*0*T*:~\n"
            "GS*HP*TBSANDBOX*THERABRIDGE*20250207*0500*401*X*005010X221A1~\nST*835*0001~\n"
            f"BPR*I*{total}*C*ACH*CCP*01*999999992*DA*123456*1512345678**01*999988880*DA*98765*20250210~\n"
            "TRN*1*EFT000123456*1512345678~\nDTM*405*20250207~\nN1*PR*MEDICARE PART B~\nN3*PO BOX 1000~\n"
            "N4*CHICAGO*IL*606011000~\n" + ("PER*BL*EDI SUPPORT*TE*8005550199~\n" if payer_contact else "") +
            "N1*PE*BRIGHT HANDS OCCUPATIONAL THERAPY*XX*1234567893~\nREF*TJ*371234567~\nLX*1~\n")
    segments = (11 if payer_contact else 10) + claims * (3 + 3 * 6) + 1  # ST..LX, claims, SE
    with open(path, "w") as out:
        out.write(head)
        with open(path.with_suffix(".body")) as fh:
            while chunk := fh.read(1 << 20):
                out.write(chunk)
        out.write(f"SE*{segments}*0001~\nGE*1*401~\nIEA*1*000000401~\n")
    path.with_suffix(".body").unlink()
    return path


# -- measured tasks (run in a child process) ------------------------------------------------------

def _task(name: str, path: str, claims: int) -> int:
    """Run one task; return the number of claims it saw."""
    if name == "split":
        data = Path(path).read_text()
        element = data[3]
        n = 0
        for seg in data.split(data[105]):
            fields = seg.strip().split(element)
            if fields[0] == "CLP":
                n += 1
        return n
    if name == "pyx12":
        import pyx12.x12file

        n = 0
        for seg in pyx12.x12file.X12Reader(path):
            if seg.get_seg_id() == "CLP":
                n += 1
        return n
    if name == "typed":
        from payer_adapters.x12 import ClaimPayment, iter_835_claims

        return sum(1 for item in iter_835_claims(Path(path)) if isinstance(item, ClaimPayment))
    if name == "fhir":
        from payer_adapters.x12 import iter_835_fhir

        return sum(1 for e in iter_835_fhir(Path(path))
                   if e["resource"]["resourceType"] == "ExplanationOfBenefit")
    if name == "fhir-bundle":
        from payer_adapters.x12 import decode

        bundle = decode(Path(path)).to_fhir()
        return sum(1 for e in bundle["entry"] if e["resource"]["resourceType"] == "ExplanationOfBenefit")
    if name == "encode":
        sys.path.insert(0, str(ROOT))
        from payer_adapters.x12 import InMemoryControlNumbers, encode_837p, load_partner
        from tests.payer_adapters.x12.builders import many_claims_bundle

        bundle = many_claims_bundle(claims)
        start = time.perf_counter()
        out = encode_837p(bundle, load_partner("sandbox"), InMemoryControlNumbers())
        _task.elapsed = time.perf_counter() - start  # type: ignore[attr-defined]
        return out.count(b"\nCLM*")
    raise SystemExit(f"unknown task {name}")


PEER_SCRIPT = r"""
import json, resource, sys, time
from {module} import X12ModelReader
path = sys.argv[1]
start = time.perf_counter()
n = 0
with X12ModelReader(path) as reader:
    for model in reader.models():
        for l2000 in getattr(model, "loop_2000", None) or []:
            n += len(getattr(l2000, "loop_2100", None) or [])
elapsed = time.perf_counter() - start
print(json.dumps({{"claims": n, "seconds": elapsed,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def _child(name: str, path: str, claims: int) -> None:
    start = time.perf_counter()
    n = _task(name, path, claims)
    elapsed = getattr(_task, "elapsed", time.perf_counter() - start)
    print(json.dumps({"claims": n, "seconds": elapsed,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_child(name: str, path: Path, claims: int) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.x12", "--child", name, "--file", str(path),
                           "--claims", str(claims)], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ensure_peer(name: str) -> tuple[Path | None, str]:
    spec = PEERS[name]
    py = spec["venv"] / "bin" / "python"
    check = [str(py), "-c", f"import {spec['module']}"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py, "ok"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(spec["venv"])], check=True, capture_output=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *spec["packages"]], check=True,
                       capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"could not install: {type(exc).__name__}"
    if subprocess.run(check, capture_output=True).returncode != 0:
        return None, "installed but cannot be imported"
    return py, "installed"


def run_peer(name: str, path: Path) -> dict:
    py, status = ensure_peer(name)
    if py is None:
        return {"error": status}
    script = PEER_SCRIPT.format(module=PEERS[name]["module"])
    try:
        proc = subprocess.run([str(py), "-c", script, str(path)], capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 30 min"}
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
        return {"error": last[:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--claims", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=40_000, help="second size for the memory comparison")
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "x12.json")
    ap.add_argument("--child")
    ap.add_argument("--file")
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child, args.file, args.claims)
        return

    WORK.mkdir(parents=True, exist_ok=True)
    small = generate_835(WORK / f"835_{args.claims}.x12", args.claims)
    large = generate_835(WORK / f"835_{args.large}.x12", args.large)
    print(f"835 files: {args.claims} claims {small.stat().st_size / 1e6:.1f} MB, "
          f"{args.large} claims {large.stat().st_size / 1e6:.1f} MB (3 lines per claim)\n")
    rows = []
    tasks = [("bare split on separators", "split"), ("pyx12 X12Reader segments", "pyx12"),
             ("ours: typed parse (iter_835_claims)", "typed"), ("ours: parse to FHIR, streaming", "fhir"),
             ("ours: parse to FHIR, whole Bundle", "fhir-bundle")]
    for label, name in tasks:
        a = run_child(name, small, args.claims)
        b = run_child(name, large, args.large)
        rows.append((label, a, b))
    if not args.skip_peers:
        for name, spec in PEERS.items():
            files = (small, large)
            label = f"{name} models"
            if spec.get("needs_no_payer_contact"):
                files = tuple(generate_835(f.with_name(f.stem + "_noper.x12"), n, payer_contact=False)
                              for f, n in ((small, args.claims), (large, args.large)))
                label += " (file without PER*BL)"
            a = run_peer(name, files[0])
            b = run_peer(name, files[1]) if "error" not in a else {"error": "skipped"}
            rows.append((label, a, b))
    enc = run_child("encode", small, args.claims)

    print(f"{'decode 835':48} {'claims/s':>10} {'peak MB':>9} {'claims/s':>10} {'peak MB':>9}")
    print(f"{'':48} {f'({args.claims})':>20} {f'({args.large})':>20}")
    for label, a, b in rows:
        def fmt(r: dict) -> str:
            if "error" in r:
                return f"{'n/a':>10} {'':>9}"
            rate = r["claims"] / r["seconds"] if r["seconds"] else 0
            return f"{rate:>10,.0f} {r['peak_rss_mb']:>9.0f}"
        print(f"{label:48} {fmt(a)} {fmt(b)}" + (f"   ({a['error']})" if "error" in a else ""))
    if "error" in enc:
        print(f"\nencode 837P: failed ({enc['error']})")
    else:
        print(f"\nencode 837P, {enc['claims']} claims: {enc['claims'] / enc['seconds']:,.0f} claims/s "
              f"({enc['seconds']:.2f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"claims": args.claims, "large": args.large,
                                    "decode": {label: {"small": a, "large": b} for label, a, b in rows},
                                    "encode": enc}, indent=2))
    print(f"\nresults: {args.out.relative_to(ROOT)}; peak MB is the child process's max RSS "
          "(includes the interpreter and imports)")


if __name__ == "__main__":
    main()
