"""Vendor the Swagger UI and ReDoc files that hsmgate serves (src/hsmgate/api/static/).

Fetches the published npm packages with ``npm pack`` (the npm registry, nothing else), copies the
built files the pages need and their licences, and rewrites static/README.md with the versions and
the SHA-256 of every file, so a reader can check them against ``npm pack <package>@<version>``.

    python tools/update_docs_assets.py                    # the versions below
    python tools/update_docs_assets.py swagger-ui-dist@5.36.0 redoc@2.5.4
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "src" / "hsmgate" / "api" / "static"

#: package → (directory under static/, files of the package to copy: the built bundle and its licences)
PACKAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "swagger-ui-dist": ("swagger-ui", ("swagger-ui-bundle.js", "swagger-ui-bundle.js.LICENSE.txt", "swagger-ui.css",
                                       "favicon-32x32.png", "LICENSE", "NOTICE")),
    "redoc": ("redoc", ("bundles/redoc.standalone.js", "bundles/redoc.standalone.js.LICENSE.txt", "LICENSE")),
}
#: ReDoc stays on 2.x: the 3.x standalone bundle is an ES module, which FastAPI's get_redoc_html
#: (a classic ``<script src>`` beside a ``<redoc spec-url>`` element) cannot load.
DEFAULT_VERSIONS = ("swagger-ui-dist@5.36.0", "redoc@2.5.4")


def vendor(spec: str, work: Path) -> list[tuple[str, str, str]]:
    """Copy the files of ``spec`` (``name@version``); returns (path under static/, sha256, source) rows."""
    name, _, version = spec.rpartition("@")
    directory, files = PACKAGES[name]
    tarball = subprocess.run(["npm", "pack", "--silent", spec], cwd=work, check=True, capture_output=True,
                             text=True).stdout.strip().splitlines()[-1]
    unpacked = work / name
    with tarfile.open(work / tarball) as archive:
        archive.extractall(unpacked, filter="data")
    target = STATIC / directory
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    rows = []
    for file in files:
        source = unpacked / "package" / file
        copied = target / Path(file).name
        shutil.copyfile(source, copied)
        rows.append((f"{directory}/{copied.name}", hashlib.sha256(copied.read_bytes()).hexdigest(),
                     f"{name}@{version}: {file}"))
    return rows


def main(specs: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row for spec in specs for row in vendor(spec, Path(tmp))]
    table = "\n".join(f"| `{path}` | {source} | `{digest}` |" for path, digest, source in rows)
    (STATIC / "README.md").write_text(f"""# Vendored documentation assets

The Swagger UI (`/swagger-ui/index.html`) and ReDoc (`/redoc`) pages load these files from hsmgate
itself, so the pages work without any request leaving the host. They are the built files of the
npm packages {", ".join(f"`{spec}`" for spec in specs)}, unchanged, with their licences
(Swagger UI: Apache-2.0, `swagger-ui/LICENSE` and `NOTICE`; ReDoc: MIT, `redoc/LICENSE`).

Update them with `python tools/update_docs_assets.py [swagger-ui-dist@X redoc@Y]` (needs `npm`),
then run the browser test (`pytest -m browser`).

The approver app's files (`approver/`, served at `/approver/`) and its vendored node-forge are
described in `approver/vendor/README.md`; this script leaves them alone.

| file | from | SHA-256 |
|---|---|---|
{table}
""")


if __name__ == "__main__":
    main(sys.argv[1:] or list(DEFAULT_VERSIONS))
