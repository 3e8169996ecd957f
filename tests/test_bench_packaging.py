"""The benchmark lives outside the runtime package (benchmarks/, the credit_spark_bench
distribution), and `credit-spark bench` without it says how to install it.

None of these tests needs credit_spark_bench installed."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import setuptools  # noqa: F401  (first: makes `distutils` setuptools' own)
from distutils.core import run_setup  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: what the benchmark defines; none of it may come back into the runtime package under another name
BENCHMARK_FUNCTIONS = ("run_benchmark", "run_baseline", "scaling_exponents", "baseline_stages")


def test_the_runtime_package_holds_no_benchmark_code():
    for name in ("credit_spark.bench", "credit_spark.baseline"):
        assert importlib.util.find_spec(name) is None, f"{name} is importable from the runtime package"

    dist = run_setup(str(ROOT / "setup.py"), stop_after="init")
    assert dist.get_name() == "credit_spark"
    assert dist.packages and not [p for p in dist.packages if "bench" in p], dist.packages
    assert "bench" not in (dist.extras_require or {}), "the benchmark is benchmarks/, not an extra"
    defines = re.compile(r"^def (%s)\(" % "|".join(BENCHMARK_FUNCTIONS), re.MULTILINE)
    for package in dist.packages:
        folder = ROOT / (dist.package_dir or {}).get(package, package.replace(".", "/"))
        assert folder.is_dir(), folder
        for module in sorted(folder.rglob("*.py")):
            where = module.relative_to(ROOT)
            assert not module.stem.startswith(("bench", "baseline")), f"{where}: benchmark module in the runtime"
            found = defines.findall(module.read_text(encoding="utf-8"))
            assert not found, f"{where} defines {found}: benchmark code belongs in benchmarks/"


def test_no_benchmark_module_over_500_lines():
    # the runtime package's own limit (tests/test_layout.py) holds for benchmarks/ too
    modules = sorted((ROOT / "benchmarks").rglob("*.py"))
    assert ROOT / "benchmarks" / "credit_spark_bench" / "bench.py" in modules
    lines = {str(m.relative_to(ROOT)): len(m.read_text(encoding="utf-8").splitlines()) for m in modules}
    assert not {m: n for m, n in lines.items() if n > 500}, lines


def test_bench_without_the_benchmark_package_says_how_to_install_it(tmp_path):
    # None in sys.modules is how Python itself refuses an import: the same ModuleNotFoundError as
    # a machine where benchmarks/ was never installed
    code = "\n".join([
        "import sys",
        "sys.modules['credit_spark_bench'] = None",
        "from pyspark import SparkContext",
        "from credit_spark.cli import main",
        "status = main(['bench', '--sizes', '1000'])",
        "assert SparkContext._active_spark_context is None, 'Spark was started'",
        "sys.exit(status)",
    ])
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "credit-spark bench: error: needs the benchmark package: bash scripts/setup.sh bench "
        "(or pip install -e ./benchmarks)"]
    assert not (tmp_path / "bench_results").exists() and not (tmp_path / "spark-warehouse").exists()
