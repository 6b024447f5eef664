"""The one atomic writer: every output gets the mode the user's umask gives a new file, whichever layer
writes it (records, checkpoints, figure tables, figures, the report)."""
import os
import stat

import numpy as np
import pytest

from analysis.figures.spec import write_csv, write_npz
from analysis.plotting import new_figure, save_figure
from deepdistill.core.io import atomic_torch_save, atomic_write, atomic_write_json


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    before = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(before)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_every_writer_gives_the_umask_mode(tmp_path, umask):
    import torch

    expected = 0o666 & ~umask                     # what open(path, "w") gives a new file
    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1])
    paths = [
        *save_figure(fig, tmp_path / "figs", "demo"),
        write_csv(tmp_path / "t.csv", {"a": [1, 2]}),
        write_npz(tmp_path / "t.npz", a=np.arange(3)),
    ]
    atomic_write_json(tmp_path / "r.json", {"v": 1})
    atomic_torch_save({"w": torch.zeros(2)}, tmp_path / "c.pt")
    paths += [tmp_path / "r.json", tmp_path / "c.pt"]
    with open(tmp_path / "plain.txt", "w") as f:
        f.write("reference")
    assert _mode(tmp_path / "plain.txt") == expected
    assert {p.name: _mode(p) for p in paths} == {p.name: expected for p in paths}


def test_replacing_a_file_gives_the_umask_mode_and_leaves_no_temporary(tmp_path, umask):
    path = tmp_path / "out.txt"
    path.write_text("old")
    os.chmod(path, 0o600)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write("new")
    assert path.read_text() == "new" and _mode(path) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_bad_mode_leaves_nothing_behind(tmp_path):
    with pytest.raises(ValueError):
        with atomic_write(tmp_path / "x.txt", "r+q"):
            pass
    assert list(tmp_path.iterdir()) == []
