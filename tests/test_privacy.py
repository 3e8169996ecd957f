"""Personal identifiers at rest: dropped or keyed hashes in raw_records, in clear nowhere."""
import dataclasses
import hashlib
import hmac
from pathlib import Path

import pytest

from credit_spark.config.loader import DatasetSpec, LabelSpec, NumericRule, PeriodSpec, PrivacySettings
from credit_spark.errors import ConfigError
from credit_spark.jobs.ingest import ingest
from credit_spark.lake.privacy import keyed_hash_column, pii_key
from credit_spark.lake.tables import RAW_RECORDS

TINY = DatasetSpec(
    name="tiny", record_id="ID", customer_id="Cust", period=PeriodSpec(column="Month"),
    label=LabelSpec(column="Score", classes=["Good", "Poor"]), pii=["Name"],
    numeric={"Age": NumericRule(min=14, max=100)},
)
HEADER = "ID,Cust,Month,Name,Age,Score"
KEY = "0123456789abcdef-test-key"
LINES = ["1,C1,March,Ann Smith,30,Good", "2,C1,April, Ann Smith ,31,Poor", "3,C3,April,,40,Good",
         "4,C4,April,Zoë Ångström,50,Good"]
NAMES = ("Ann Smith", "Smith", "Zoë Ångström", "Ångström")


def write_csv(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return str(path)


def hmac_hex(text: str) -> str:
    return hmac.new(KEY.encode(), text.encode("utf-8"), hashlib.sha256).hexdigest()


def files_mentioning(folder: str, words) -> list[str]:
    """Every file under ``folder`` (Delta logs with their column statistics, data files) whose
    bytes contain one of ``words`` in UTF-8."""
    hits = []
    for path in Path(folder).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: {w}" for w in words if w.encode("utf-8") in data]
    return hits


@pytest.fixture()
def tiny_cfg(cfg):
    return dataclasses.replace(cfg, spec=TINY)


def test_the_keyed_hash_is_hmac_sha256_of_the_text(spark):
    df = spark.createDataFrame([("Ann Smith",), ("Zoë Ångström",), ("",), (None,)], "v string")
    out = [r[0] for r in df.select(keyed_hash_column(df.v, KEY.encode())).collect()]
    assert out == [hmac_hex("Ann Smith"), hmac_hex("Zoë Ångström"), None, None]


def test_pii_is_dropped_by_default_and_in_clear_nowhere(spark, tiny_cfg, tmp_path):
    assert tiny_cfg.privacy == PrivacySettings(pii="drop")
    ingest(spark, tiny_cfg, write_csv(tmp_path / "b.csv", LINES))
    raw = spark.read.format("delta").load(tiny_cfg.table_path(RAW_RECORDS))
    assert raw.count() == 4 and raw.where("Name IS NOT NULL").count() == 0
    assert files_mentioning(tiny_cfg.lake.root, NAMES) == []


def test_hashed_pii_joins_records_of_one_person_and_is_in_clear_nowhere(spark, tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("CREDIT_SPARK_PII_KEY", KEY)
    hashed = dataclasses.replace(tiny_cfg, privacy=PrivacySettings(pii="hash"))
    ingest(spark, hashed, write_csv(tmp_path / "b.csv", LINES))
    names = {r.ID: r.Name for r in spark.read.format("delta").load(hashed.table_path(RAW_RECORDS)).collect()}
    assert names == {"1": hmac_hex("Ann Smith"), "2": hmac_hex("Ann Smith"), "3": None,
                     "4": hmac_hex("Zoë Ångström")}
    assert files_mentioning(hashed.lake.root, NAMES) == []


def test_hash_without_a_usable_key_stops_before_any_read(spark, tiny_cfg, tmp_path, monkeypatch):
    hashed = dataclasses.replace(tiny_cfg, privacy=PrivacySettings(pii="hash", key_env="MY_PII_KEY"))
    monkeypatch.delenv("MY_PII_KEY", raising=False)
    with pytest.raises(ConfigError, match="privacy.pii is 'hash' but the environment variable MY_PII_KEY"):
        ingest(spark, hashed, str(tmp_path / "does-not-exist.csv"))
    monkeypatch.setenv("MY_PII_KEY", "short")
    with pytest.raises(ConfigError, match="the key in MY_PII_KEY has 5 bytes; use at least 16"):
        pii_key(hashed.privacy)
    assert not Path(hashed.lake.root).exists()
