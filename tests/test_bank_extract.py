"""A bank's own extract, as docs/spec.md walks through it: the worked example's spec given by path,
and a label whose header cannot be a spec name, mapped by source_columns; through the CLI."""
import random
import re
from pathlib import Path

import pytest

from credit_spark.cli import main

pytestmark = pytest.mark.e2e
SPEC_DOC = Path(__file__).resolve().parents[1] / "docs" / "spec.md"
CHEAP = "train:\n  algorithms: [logistic_regression, scorecard]\n  selection: {method: holdout}\n" \
        "  tuning: {method: none}\n  comparison: {bootstrap_samples: 200}\n" \
        "  calibration: {method: none}\n  ensemble: {enabled: false}\n"   # the spec is under test


def doc_block(after: str, language: str) -> str:
    """The first ```language block after the line containing ``after`` in docs/spec.md."""
    text = SPEC_DOC.read_text()
    start = text.index(after)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, start)
    return match.group(1)


def loan_book(path: Path, customers: int = 80, months: int = 6, seed: int = 3) -> None:
    """Rows in the worked example's header, defaults more likely with high days past due."""
    rng = random.Random(seed)
    header = doc_block("Worked example: a bank", "").splitlines()[0]
    lines = [header]
    for c in range(customers):
        income = rng.choice([28000, 41000, 52000, 75000, 120000])
        for m in range(1, months + 1):
            dpd = rng.choice([0, 0, 0, 5, 30, 90])
            balance = round(rng.uniform(100, 5000), 2)
            default = "Y" if dpd >= 30 and rng.random() < 0.7 or rng.random() < 0.08 else "N"
            lines.append(f"A-{c}-{m},C-{c},2024-{m:02d},Person {c},123-45-{c:04d},{income},{balance},5000,{dpd},"
                         f"{rng.choice(['card', 'loan'])},{rng.choice(['North', 'South'])},{default}")
    path.write_text("\n".join(lines) + "\n")


def test_the_worked_example_trains_and_scores_with_the_spec_given_by_path(spark, tmp_path, capsys):
    spec = tmp_path / "my_bank.yaml"
    spec.write_text(doc_block("Worked example: a bank", "yaml"))
    overlay = tmp_path / "my_bank_overlay.yaml"
    overlay.write_text(f"dataset: {spec}\n")
    cheap = tmp_path / "cheap.yaml"
    cheap.write_text(CHEAP)
    loan_book(tmp_path / "loan_book.csv")
    common = ["--conf", str(overlay), "--conf", str(cheap), "--lake", str(tmp_path / "my_bank_lake")]
    assert main([*common, "catalog"]) == 0 and "utilisation__mean3" in capsys.readouterr().out
    assert main([*common, "ingest", "--input", str(tmp_path / "loan_book.csv")]) == 0
    assert main([*common, "features"]) == 0
    assert main([*common, "train"]) == 0
    assert main([*common, "score", "--run-date", "2024-06-30"]) == 0
    out = capsys.readouterr().out
    assert "scored 80 records for run date 2024-06-30" in out
    assert main([*common, "sql", "SELECT count(*) AS n FROM scores WHERE prob_Y IS NOT NULL"]) == 0
    assert "|80|" in capsys.readouterr().out.replace(" ", "")


def test_a_dotted_label_header_trains_through_source_columns(spark, tmp_path, capsys):
    lines = ["ID,LIMIT_BAL,AGE,PAY_0,default.payment.next.month"]
    rng = random.Random(5)
    for i in range(400):
        pay = rng.choice([-1, 0, 0, 1, 2])
        lines.append(f"{i},{rng.choice([10000, 50000, 200000])},{rng.randint(21, 70)},{pay},"
                     f"{int(pay >= 1 and rng.random() < 0.7 or rng.random() < 0.1)}")
    (tmp_path / "cards.csv").write_text("\n".join(lines) + "\n")
    spec = tmp_path / "cards.yaml"
    spec.write_text("name: cards\nrecord_id: ID\nlabel: {column: default_next_month, classes: [0, 1]}\n"
                    "source_columns: {default_next_month: 'default.payment.next.month'}\n"
                    "numeric: {LIMIT_BAL: {min: 0}, AGE: {min: 18, max: 100}, PAY_0: {min: -2, max: 9}}\n")
    overlay = tmp_path / "cards_overlay.yaml"
    overlay.write_text(f"dataset: {spec}\n{CHEAP}")
    common = ["--conf", str(overlay), "--lake", str(tmp_path / "lake")]
    assert main([*common, "ingest", "--input", str(tmp_path / "cards.csv")]) == 0
    assert "read 400 rows -> raw_records 400" in capsys.readouterr().out
    assert main([*common, "features"]) == 0
    assert main([*common, "train"]) == 0
    assert main([*common, "score", "--run-date", "2026-01-31"]) == 0          # no period: every record
    assert "scored 400 records" in capsys.readouterr().out
    assert main([*common, "sql", "SELECT min(prob_0 + prob_1) AS s FROM scores"]) == 0
    assert "|1.0" in capsys.readouterr().out.replace(" ", "")
