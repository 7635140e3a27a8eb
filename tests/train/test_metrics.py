import math

import pytest

from lstmkit.train import MetricsLogger, read_metrics


def test_append_and_read(tmp_path):
    assert read_metrics(tmp_path) == []
    with MetricsLogger(tmp_path, add_time=False) as metrics:
        metrics.log(split="train", step=1, loss=5.0)
        metrics.log({"split": "valid", "step": 1}, ppl=math.inf)
        assert len(read_metrics(tmp_path)) == 2  # flushed line by line, visible before close
    assert read_metrics(tmp_path) == [
        {"split": "train", "step": 1, "loss": 5.0},
        {"split": "valid", "step": 1, "ppl": math.inf},
    ]


def test_resume_appends(tmp_path):
    with MetricsLogger(tmp_path, add_time=False) as metrics:
        metrics.log(step=1)
    with MetricsLogger(tmp_path) as metrics:
        metrics.log(step=2)
    records = read_metrics(tmp_path)
    assert [record["step"] for record in records] == [1, 2]
    assert "time" in records[1] and "time" not in records[0]


def test_record_cut_off_by_a_crash_is_skipped(tmp_path):
    with MetricsLogger(tmp_path, add_time=False) as metrics:
        metrics.log(step=1)
    with open(tmp_path / "metrics.jsonl", "a") as file:
        file.write('{"step": 2, "lo')  # the crash
    assert read_metrics(tmp_path) == [{"step": 1}]
    with MetricsLogger(tmp_path, add_time=False) as metrics:
        metrics.log(step=2)
    assert read_metrics(tmp_path) == [{"step": 1}, {"step": 2}]
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2 is not valid JSON"):
        read_metrics(tmp_path, strict=True)


def test_unserializable_record_writes_nothing(tmp_path):
    with MetricsLogger(tmp_path, add_time=False) as metrics:
        with pytest.raises(TypeError):
            metrics.log(bad=object())
        metrics.log(step=1)
    assert read_metrics(tmp_path) == [{"step": 1}]
    with pytest.raises(ValueError, match="after close"):
        metrics.log(step=2)
