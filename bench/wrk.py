"""Run wrk (Debian package) against a URL and parse its figures."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non2xx: int
    socket_errors: int  # connect/read/write errors and requests past wrk's 2 s timeout

    def row(self) -> str:
        return (f"{self.rps:9.0f}/s  p50 {self.p50_ms:6.2f} ms  p99 {self.p99_ms:6.2f} ms  "
                f"({self.requests} req, {self.non2xx} non-2xx, {self.socket_errors} socket errors/timeouts)")


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or "wrk"


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run(url: str, *, lua: str | None = None, seconds: int = 20, connections: int = 32, threads: int = 2) -> WrkResult:
    """One bounded wrk run (``-d seconds``) on loopback."""
    args = [ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    script = None
    if lua:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(lua)
        script.close()
        args[1:1] = ["-s", script.name]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(rps, p50, p99, total, int(non2xx.group(1)) if non2xx else 0,
                     sum(int(x) for x in sock.groups()) if sock else 0)


def _headers(headers: dict[str, str] | None) -> str:
    return "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (headers or {}).items())


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_script(paths: list[str], headers: dict[str, str] | None = None) -> str:
    """GET a random path from the list on each request."""
    lines = ",\n".join(f'"{p}"' for p in paths)
    return (f"{_headers(headers)}local paths = {{\n{lines}\n}}\nmath.randomseed(os.time())\n"
            "request = function()\n  return wrk.format('GET', paths[math.random(#paths)])\nend\n")


def post_script(path: str, body: str, headers: dict[str, str] | None = None) -> str:
    return (f'wrk.method = "POST"\nwrk.path = "{path}"\nwrk.body = {_lua_string(body)}\n'
            f'wrk.headers["Content-Type"] = "application/fhir+json"\n{_headers(headers)}')


def put_script(prefix: str, ids: list[str], body: str, headers: dict[str, str] | None = None) -> str:
    """PUT to ``prefix + id`` for a random id of the list; ``body`` has ``__ID__`` where the id goes."""
    listed = ",".join(f'"{i}"' for i in ids)
    return (f'wrk.headers["Content-Type"] = "application/fhir+json"\n{_headers(headers)}local ids = {{{listed}}}\n'
            f"local body = {_lua_string(body)}\nmath.randomseed(os.time())\n"
            "request = function()\n  local id = ids[math.random(#ids)]\n"
            f"  return wrk.format('PUT', '{prefix}' .. id, nil, (body:gsub('__ID__', id)))\nend\n")
