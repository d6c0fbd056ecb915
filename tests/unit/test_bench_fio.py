"""Tests of isobench.bench.fio on a real fio output.

data/fio-randread.json is the output of ``fio --name=x --size=4m --rw=randread
--bs=4k --output-format=json --filename=/tmp/fio-test-FILE`` (fio 3.33),
trimmed to the bandwidth and IOPS fields and re-indented.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from isobench.bench.fio import MIB, FioJob, FioMetric, metric_for, parse_fio
from isobench.errors import HarnessError

FIXTURE = Path(__file__).parent / "data" / "fio-randread.json"
# A note that the fio 3.33 binary contains, for an iodepth above 1 with a
# synchronous I/O engine.
FIO_NOTE = (
    "note: both iodepth >= 1 and synchronous I/O engine are selected, "
    "queue depth will be capped at 1\n"
)


def fixture_text() -> str:
    return FIXTURE.read_text(encoding="utf-8")


def fio_output(*jobs: tuple[str, dict[str, Any]]) -> str:
    """Return the fixture output with one copy of its job per (name, changes).

    ``changes`` maps "section.field" (for example "read.iops") or a whole
    top-level key of the job to its new value.
    """
    document = json.loads(fixture_text())
    template = document["jobs"][0]
    document["jobs"] = []
    for name, changes in jobs:
        job = copy.deepcopy(template)
        job["jobname"] = name
        job["job options"]["name"] = name
        for key, value in changes.items():
            section, _, field = key.partition(".")
            if field:
                job[section][field] = value
            else:
                job[section] = value
        document["jobs"].append(job)
    return json.dumps(document, indent=2)


def job(name: str, **values: float) -> FioJob:
    fields = {"read_mib_s": 0.0, "write_mib_s": 0.0, "read_iops": 0.0, "write_iops": 0.0}
    fields.update(values)
    return FioJob(name=name, **fields)


def test_parse_real_output() -> None:
    (parsed,) = parse_fio(fixture_text())

    assert parsed.name == "x"
    assert parsed.read_iops == 12962.025316
    assert parsed.read_mib_s == pytest.approx(53092455 / MIB)
    assert parsed.read_mib_s == pytest.approx(50.632, abs=0.001)
    assert parsed.write_mib_s == 0.0
    assert parsed.write_iops == 0.0


def test_parse_warning_before_json() -> None:
    (parsed,) = parse_fio(FIO_NOTE + fixture_text())

    assert parsed.read_iops == 12962.025316


def test_parse_text_after_json() -> None:
    (parsed,) = parse_fio(fixture_text() + "fio: file hash not empty on exit\n")

    assert parsed.name == "x"


def test_parse_brace_in_warning() -> None:
    text = "fio: option {bs} ignored\n" + fixture_text()

    (parsed,) = parse_fio(text)

    assert parsed.name == "x"


def test_parse_jobs_in_order() -> None:
    text = fio_output(
        ("seqread", {"read.bw_bytes": 2 * MIB}),
        ("randwrite", {"write.iops": 250.5, "read.iops": 0}),
    )

    jobs = parse_fio(text)

    assert [parsed.name for parsed in jobs] == ["seqread", "randwrite"]
    assert jobs[0].read_mib_s == 2.0
    assert jobs[1].write_iops == 250.5


def test_parse_expected_jobs_present() -> None:
    text = fio_output(("seqread", {}), ("seqwrite", {}))

    jobs = parse_fio(text, expected=["seqwrite", "seqread"])

    assert len(jobs) == 2


def test_parse_expected_job_missing() -> None:
    text = fio_output(("seqread", {}), ("randread", {}))

    with pytest.raises(HarnessError, match="fio job 'fsync' is missing") as caught:
        parse_fio(text, expected=["seqread", "fsync"])
    assert "jobs found: seqread, randread" in str(caught.value)


def test_parse_failed_job_names_it() -> None:
    text = fio_output(("seqread", {}), ("seqwrite", {"error": 28}))

    with pytest.raises(HarnessError, match="fio job 'seqwrite' failed with error 28") as caught:
        parse_fio(text)
    assert "No space left on device" in str(caught.value)


def test_parse_missing_field_names_job() -> None:
    text = fio_output(("randread", {"read": {"iops": 10.0}}))

    with pytest.raises(HarnessError, match=r"fio job 'randread' has no number at 'read\.bw_bytes'"):
        parse_fio(text)


def test_parse_missing_section_names_job() -> None:
    document = json.loads(fio_output(("seqwrite", {})))
    del document["jobs"][0]["write"]

    with pytest.raises(HarnessError, match=r"'seqwrite' has no number at 'write\.bw_bytes'"):
        parse_fio(json.dumps(document))


def test_parse_job_without_name() -> None:
    document = json.loads(fixture_text())
    del document["jobs"][0]["jobname"]

    with pytest.raises(HarnessError, match="fio job 0 has no 'jobname'"):
        parse_fio(json.dumps(document))


def test_parse_no_jobs() -> None:
    with pytest.raises(HarnessError, match="fio output has no jobs"):
        parse_fio('{"fio version": "fio-3.33", "jobs": []}')


def test_parse_no_json() -> None:
    with pytest.raises(HarnessError, match="fio output contains no JSON object: 'fio: command"):
        parse_fio("fio: command line option --bogus not recognized\n")


def test_parse_cut_off_json() -> None:
    text = fixture_text()[:500]

    with pytest.raises(HarnessError, match="fio output is not valid JSON"):
        parse_fio(text)


def test_parse_job_not_object() -> None:
    with pytest.raises(HarnessError, match="fio job 0 is not a JSON object"):
        parse_fio('{"jobs": [1]}')


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("seqread", FioMetric("MiB/s", 1.5)),
        ("seqwrite", FioMetric("MiB/s", 2.5)),
        ("randread", FioMetric("IOPS", 300.0)),
        ("randwrite", FioMetric("IOPS", 400.0)),
        ("fsync", FioMetric("IOPS", 400.0)),
    ],
)
def test_metric_for_job(name: str, expected: FioMetric) -> None:
    figures = job(name, read_mib_s=1.5, write_mib_s=2.5, read_iops=300.0, write_iops=400.0)

    assert metric_for(figures) == expected


def test_metric_for_value_index() -> None:
    metric = metric_for(job("randread", read_iops=12.0))

    assert metric.unit == "IOPS"
    assert metric[1] == 12.0


def test_metric_for_parsed_fixture() -> None:
    (parsed,) = parse_fio(fio_output(("randread", {})))

    assert metric_for(parsed) == FioMetric("IOPS", 12962.025316)


def test_metric_for_unknown_job() -> None:
    with pytest.raises(HarnessError, match="fio job 'x' has no metric; known jobs: seqread"):
        metric_for(job("x"))
