"""How long ``lrun import`` takes on a large recording: ``python bench/har_import.py [REQUESTS] [ASSET_BYTES]``.

Writes a HAR of REQUESTS API calls (each answer gives the token the next request sends, so every one is a
correlation) interleaved with as many static assets of ASSET_BYTES each (dropped as noise), then imports it.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from runner.importers.convert import ImportOptions, import_har
from runner.importers.write import WriteOptions


def entry(url: str, mime: str, text: str, t: float) -> dict:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_800_000_000 + t)) + f".{int(t % 1 * 1000):03d}Z"
    return {
        "startedDateTime": stamp,
        "time": 5,
        "request": {"method": "GET", "url": url, "httpVersion": "HTTP/1.1", "headers": [], "queryString": []},
        "response": {
            "status": 200,
            "headers": [{"name": "Content-Type", "value": mime}],
            "content": {"size": len(text), "mimeType": mime, "text": text},
        },
    }


def main(requests: int = 2000, asset_bytes: int = 25_000) -> None:
    host, asset = "https://app.example.test", base64.b64encode(os.urandom(asset_bytes)).decode()
    entries = []
    for i in range(requests):
        answer = json.dumps({"token": f"t{i}-{i:08d}", "items": [{"id": n, "name": f"item {n}"} for n in range(20)]})
        query = f"?token=t{i - 1}-{i - 1:08d}" if i else ""
        entries.append(entry(f"{host}/step/{i}{query}", "application/json", answer, i * 0.01))
        if asset_bytes:
            entries.append(entry(f"{host}/static/chunk{i}.js", "application/javascript", asset, i * 0.01 + 0.005))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "large.har"
        path.write_text(json.dumps({"log": {"version": "1.2", "creator": {"name": "bench"}, "entries": entries}}))
        size = path.stat().st_size / 1e6
        started = time.perf_counter()
        imported = import_har(str(path), ImportOptions(write=WriteOptions(name="large")))
        elapsed = time.perf_counter() - started
    print(
        f"{size:.1f} MB, {len(entries)} entries: imported in {elapsed:.2f} s "
        f"({len(imported.steps)} steps, {len(imported.correlations.found)} correlations)"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
