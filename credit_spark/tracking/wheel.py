"""The wheel of the credit_spark that is running, logged inside every model.

A saved pipeline names its custom stages by class path (``credit_spark.ml.scorecard.
ScorecardModel``), so loading it needs this package, at the very version that trained it, and no
index serves credit_spark. So each logged model carries the wheel (MLflow's ``code/`` folder) and
its ``requirements.txt`` points at it (``code/credit_spark-<version>-py3-none-any.whl``), which
is MLflow's own convention for bundled wheels: ``pip install -r requirements.txt`` run in the
downloaded model folder, or MLflow's ``virtualenv`` environment manager, installs it on a machine
that never saw this repository.

The wheel is the running code, built once per process:

* from a source checkout (an editable install, ``setup.py`` beside the package): built by
  setuptools from a copy of the sources, exactly as ``pip wheel`` builds a release;
* from an installed wheel (a cluster, Databricks): repacked from the installed files, which are
  byte for byte the files of the wheel that was installed.
"""
from __future__ import annotations

import atexit
import base64
import csv
import functools
import hashlib
import importlib.metadata
import io
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

logger = logging.getLogger(__name__)

DISTRIBUTION = "credit_spark"
#: what a wheel is built from in a source checkout: the package, the config it ships as
#: ``credit_spark.conf``, and what setup.py reads
SOURCE_ITEMS = ("setup.py", "pyproject.toml", "README.md", "credit_spark", "conf")
#: installed files that are the installer's, not the wheel's
INSTALLER_FILES = ("INSTALLER", "REQUESTED", "RECORD", "direct_url.json")


class WheelError(RuntimeError):
    """The running credit_spark cannot be packed into a wheel."""


def source_tree() -> Path | None:
    """The source checkout the running package is imported from, or None when it is installed."""
    root = Path(__file__).resolve().parents[2]
    return root if all((root / item).exists() for item in SOURCE_ITEMS) else None


def build_from_source(source: Path, dest: Path, *, verbose: bool = False) -> tuple[Path, str]:
    """Build the wheel of ``source`` into ``dest`` with setuptools; returns it and the build's output.
    Built from a copy, so the checkout gets no ``build/`` or ``*.egg-info``, and without build
    isolation, so no index is needed: setuptools and wheel must be installed (the dev extra)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="credit_spark_src_") as tmp:
        copy = Path(tmp) / "src"
        copy.mkdir()
        for item in SOURCE_ITEMS:
            if (source / item).is_dir():
                shutil.copytree(source / item, copy / item, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy(source / item, copy / item)
        # an absolute path: pip reads a bare folder name as a project name on the index
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v" if verbose else "-q", "--no-deps",
                               "--no-build-isolation", "--disable-pip-version-check", "-w", str(dest),
                               str(copy.resolve())], capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    wheels = sorted(dest.glob(f"{DISTRIBUTION}-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise WheelError(f"building the {DISTRIBUTION} wheel from {source} failed (pip wheel, exit "
                         f"{proc.returncode}): {output.strip().splitlines()[-1] if output.strip() else ''}")
    return wheels[-1], output


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack_installed(dest: Path) -> Path:
    """The installed distribution's files as a wheel in ``dest``: the package's files and its
    ``.dist-info`` metadata, without what the installer added (byte-compiled files, INSTALLER,
    console scripts), with a new RECORD."""
    dist = importlib.metadata.distribution(DISTRIBUTION)
    version = dist.version
    info = f"{DISTRIBUTION}-{version}.dist-info"
    files = [f for f in dist.files or [] if not str(f).startswith("..") and "__pycache__" not in f.parts]
    package = [f for f in files if f.parts[0] == DISTRIBUTION]
    metadata = [f for f in files if f.parts[0] == info and f.name not in INSTALLER_FILES]
    if not any(f.name == "__init__.py" and len(f.parts) == 2 for f in package) or not metadata:
        raise WheelError(f"{DISTRIBUTION} {version} is not installed from a wheel here (an editable install "
                         f"without its source tree?): its files cannot be packed into one")
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{DISTRIBUTION}-{version}-py3-none-any.whl"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for f in sorted(package, key=str) + sorted(metadata, key=str):   # .dist-info last, as wheels do
            data = Path(dist.locate_file(f)).read_bytes()
            archive.writestr(f.as_posix(), data)
            writer.writerow([f.as_posix(), _record_hash(data), len(data)])
        writer.writerow([f"{info}/RECORD", "", ""])
        archive.writestr(f"{info}/RECORD", record.getvalue())
    return wheel


@functools.cache
def own_wheel() -> Path | None:
    """The running credit_spark as a wheel (built once per process, removed at exit), or None,
    with a warning saying why, when it cannot be built: a model logged then needs credit_spark
    installed wherever it is loaded, as before."""
    dest = Path(tempfile.mkdtemp(prefix="credit_spark_wheel_"))
    atexit.register(shutil.rmtree, dest, ignore_errors=True)
    source = source_tree()
    try:
        wheel = build_from_source(source, dest)[0] if source is not None else repack_installed(dest)
    except (WheelError, OSError, subprocess.SubprocessError) as exc:
        logger.warning("models are logged without the %s wheel, so loading one needs %s installed: %s",
                       DISTRIBUTION, DISTRIBUTION, exc)
        return None
    logger.info("models carry %s (%s)", wheel.name, "built from the source tree" if source else "the installed wheel")
    return wheel
