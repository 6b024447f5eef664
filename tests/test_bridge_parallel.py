"""The bridge study on several processes (``jobs``) gives the serial run's results, and resumes."""
import json

import pytest

from deepdistill.studies.bridge import TINY_PRESET, run_bridge_study

TINY = TINY_PRESET
_TIMES = {"seconds", "wall_time_s"}


def _without_times(obj):
    """The study without its timings (the one thing that differs between two runs of it)."""
    if isinstance(obj, dict):
        return {k: _without_times(v) for k, v in obj.items() if k not in _TIMES}
    if isinstance(obj, list):
        return [_without_times(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    serial_dir, parallel_dir = tmp_path_factory.mktemp("serial"), tmp_path_factory.mktemp("parallel")
    serial = run_bridge_study(serial_dir, TINY, jobs=1)
    lines = []
    parallel = run_bridge_study(parallel_dir, TINY, jobs=2, log=lines.append)
    return serial, parallel, parallel_dir, lines


def test_parallel_equals_serial_bitwise(studies):
    serial, parallel, _, lines = studies
    assert any("independent task(s) on 2 process(es)" in line for line in lines)   # it did run in parallel
    a, b = _without_times(serial["parts"]), _without_times(parallel["parts"])
    assert set(a) == {"exact", "width", "parted", "toy"} and "mnist1d" in a["parted"]
    # JSON text equal: every float has the same bits (repr round-trips), every list the same order.
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert [r["passed"] for r in serial["must_show"]] == [r["passed"] for r in parallel["must_show"]]


def test_the_check_would_see_a_difference(studies):
    serial, _, _, _ = studies
    a = _without_times(serial["parts"])
    b = json.loads(json.dumps(a))
    b["width"]["cells"][0]["deep_risk"][0] += 1e-15 * abs(b["width"]["cells"][0]["deep_risk"][0]) + 5e-324
    assert json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True)


def test_parallel_run_resumes_from_its_files(studies):
    _, parallel, parallel_dir, _ = studies
    (parallel_dir / "bridge_width.json").unlink()        # a part lost: its cells are still there
    lines = []
    again = run_bridge_study(parallel_dir, TINY, jobs=2, log=lines.append)
    assert not any("independent task" in line for line in lines)   # nothing recomputed in the pool
    assert json.dumps(_without_times(again["parts"]), sort_keys=True) == \
        json.dumps(_without_times(parallel["parts"]), sort_keys=True)


def test_jobs_is_checked():
    with pytest.raises(ValueError, match="`jobs`"):
        run_bridge_study(None, TINY, jobs=0)
