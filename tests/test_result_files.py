"""Files a user may find broken, and folders a user may get wrong: each is named with what to do.

* A truncated finished checkpoint stops the run with one line naming the file (torch's own error names none).
* A truncated epoch checkpoint is discarded with a warning, and its generation restarts: the run ends
  with the uninterrupted result.
* An unreadable record is named by the sweep (which writes it again) and by ``rollup``, which counts it;
  ``rollup --strict`` makes it an error.
* An output folder that is a file, cannot be created or cannot be written to: one line, exit status 2.
* ``n_train`` too small for the validation split: a clear error.
"""
from __future__ import annotations

import csv
import os

import pytest

from deepdistill import cli
from deepdistill.core.data import load_dataset
from deepdistill.core.io import OutDirError, ensure_writable_dir
from deepdistill.engine.runs import CorruptFileError, partial_path, read_record, run_dir_for
from deepdistill.drivers.sweep import expand_grid, run_sweep
from deepdistill.engine.train import train_run

TINY = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 16, "depth": 1}, n_train=300, epochs=3,
            batch_size=64, lr=1e-2, device="cpu", method="sd_kd", generations=2)
ARGS = ["--dataset", "digits", "--model", "mlp", "--model-kwargs", '{"hidden": 16, "depth": 1}', "--n-train", "300",
        "--epochs", "3", "--batch-size", "64", "--device", "cpu", "--method", "sd_kd", "--generations", "2"]


def _truncate(path, keep: int = 300) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


def test_a_truncated_checkpoint_is_named_with_what_to_do(tmp_path, capsys, one_thread):
    run_dir = tmp_path / "run"
    train_run(TINY, run_dir)
    (run_dir / "record.json").unlink()                      # as if stopped before the record was written
    _truncate(run_dir / "generation_1.pt")
    with pytest.raises(CorruptFileError, match=r"generation_1\.pt.*corrupt.*Delete it"):
        train_run(TINY, run_dir)
    assert cli.main(["train", *ARGS, "--out-dir", str(run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: checkpoint ") and str(run_dir / "generation_1.pt") in err[0]
    (run_dir / "generation_1.pt").unlink()                  # what the message says to do
    assert cli.main(["train", *ARGS, "--out-dir", str(run_dir), "--quiet"]) == 0


def test_a_truncated_epoch_checkpoint_is_discarded_and_its_generation_restarted(tmp_path, one_thread):
    whole = train_run(TINY, tmp_path / "whole")
    run_dir = tmp_path / "run"
    train_run(dict(TINY, generations=1), run_dir)          # generation 0 finished ...
    (run_dir / "record.json").unlink()
    partial_path(run_dir, 1).write_bytes(b"PK\x03\x04 half a zip")   # ... and a torn epoch checkpoint of 1
    with pytest.warns(RuntimeWarning, match=r"generation_1\.partial\.pt.* unreadable .*discarded: generation 1 restarts"):
        record = train_run(TINY, run_dir)
    assert [g["test"] for g in record["generations"]] == [g["test"] for g in whole["generations"]]


def test_unreadable_records_are_named_by_the_sweep_and_counted_by_rollup(tmp_path, capsys, one_thread):
    configs = expand_grid(dict(TINY, epochs=1), methods=["sd_kd"], gt_weights=[0.5], generations=[2], seeds=[0, 1])
    run_sweep(configs, tmp_path)
    broken = run_dir_for(configs[1], tmp_path) / "record.json"
    broken.write_text(broken.read_text()[:200])

    assert cli.main(["rollup", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert f"unreadable: {broken} is not valid JSON" in captured.err
    assert "1 record(s)" in captured.out and "1 unreadable record(s) left out" in captured.out
    with open(tmp_path / "rollup.csv", newline="") as f:
        assert {row["n_seeds"] for row in csv.DictReader(f)} == {"1"}
    assert cli.main(["rollup", str(tmp_path), "--strict"]) == 2
    assert "1 record(s) under" in capsys.readouterr().err

    log = []
    with pytest.warns(RuntimeWarning, match="is not valid JSON"):
        run_sweep(configs, tmp_path, log=log.append)         # names it, and writes it again from the checkpoints
    assert read_record(broken)["run_id"] == configs[1].run_id()
    assert cli.main(["rollup", str(tmp_path), "--strict"]) == 0


def test_output_folder_problems_are_one_line_errors(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    sweep = ["sweep", "--dataset", "digits", "--model", "mlp", "--epochs", "1", "--generations", "1", "--methods", "ce",
             "--seeds", "0", "--device", "cpu", "--quiet", "--jobs", "1"]
    for out, message in ((a_file, "is a file, not a folder"), (a_file / "sub", "cannot be created: Not a directory")):
        for argv in (sweep, ["train", "--dataset", "digits", "--device", "cpu", "--quiet"]):
            assert cli.main([*argv, "--out-dir", str(out)]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("error: `--out-dir`") and message in err[0], err
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    if os.geteuid() == 0:
        # root writes anywhere: make the probe fail as a read-only folder makes it fail for everyone else.
        import deepdistill.core.io

        def refuse(target):
            raise PermissionError(13, "Permission denied", str(target))

        monkeypatch.setattr(deepdistill.core.io, "_open_temp", refuse)
    else:
        read_only.chmod(0o500)
    with pytest.raises(OutDirError, match=r"`out_dir` '.*read_only' is not writable: Permission denied"):
        ensure_writable_dir(read_only)
    assert cli.main([*sweep, "--out-dir", str(read_only)]) == 2
    assert "is not writable" in capsys.readouterr().err
    assert list(read_only.iterdir()) == []


def test_n_train_too_small_for_the_validation_split_is_refused():
    with pytest.raises(ValueError, match=r"`n_train`=5 is too small for the validation split: .* 1 example.* 10 "
                                         r"classes of 'digits'\. Use n_train >= 95"):
        load_dataset("digits", n_train=5)
    assert len(load_dataset("digits", n_train=95).val) == 10        # the smallest that works
