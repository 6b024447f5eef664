"""The command line and the sweep: help, grid expansion, sharding, resumable sweeps, bad input."""
from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys

import pytest

from deepdistill import cli
from deepdistill.core.config import TrainConfig
from deepdistill.engine.runs import RECORD_FILE, run_dir_for
from deepdistill.drivers.sweep import expand_grid, parse_shard, run_sweep, select_shard
from deepdistill.engine.train import run_one

TINY_ARGS = ["--dataset", "digits", "--model", "mlp", "--model-kwargs", '{"hidden": 16, "depth": 1}', "--n-train", "300",
             "--epochs", "1", "--batch-size", "64", "--lr", "0.01", "--device", "cpu"]


def test_help_runs_and_shows_every_option_with_its_default(capsys):
    out = subprocess.run([sys.executable, "-m", "deepdistill", "train", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in out, f.name
    assert "(default: mnist1d)" in out and "(default: sd_kd)" in out
    # Help and choices come from the fields themselves: every field has a help text; a field with
    # choices offers exactly its registry (a model registered later would be offered too).
    from deepdistill.core.config import field_choices, field_help
    from deepdistill.core.models import MODELS
    assert all(field_help(f.name) for f in dataclasses.fields(TrainConfig))
    assert field_choices("model") == sorted(MODELS) and "{cnn1d,cnn2d,linear,mlp,ntk_mlp,resnet18}" in out
    with pytest.raises(SystemExit) as exit_info:                    # in-process: one interpreter start is enough
        cli.main(["sweep", "--help"])
    assert exit_info.value.code == 0
    sweep_help = capsys.readouterr().out
    for option in ("--methods", "--gt-weight", "--seeds", "--generations", "--datasets", "--shard", "--amp"):
        assert option in sweep_help


def test_every_subcommands_help_prints(capsys):
    # A "%" in a help text (the estimators' "90% interval") once crashed `estimate-weight --help`.
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    for name in sub.choices:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([name, "--help"])
        assert exit_info.value.code == 0, name
        assert capsys.readouterr().out.startswith("usage:"), name


def test_parser_maps_options_to_config_fields():
    args = cli.build_parser().parse_args(["train", "--gt-weight", "0.9", "0.1", "--generations", "3", "--amp",
                                          "--deterministic", "--n-train", "none"])
    fields = cli.config_fields(args)
    assert fields["gt_weight"] == [0.9, 0.1] and fields["amp"] == "bf16" and fields["deterministic"] is True
    assert fields["n_train"] is None
    assert TrainConfig.from_dict(fields).generation_settings(2).gt_weight == 0.1


def test_expand_grid_is_pure_stable_and_deduplicated():
    base = {"dataset": "digits", "model": "mlp", "epochs": 1}
    grid = dict(methods=["sd_kd", "ce"], gt_weights=[0.0, 0.5, 1.0], generations=[2], seeds=[0, 1, 2])
    a, b = expand_grid(base, **grid), expand_grid(base, **grid)
    assert a == b
    # sd_kd: 3 weights x 3 seeds; ce reads no gt_weight: one run per seed, not three.
    assert len(a) == 9 + 3
    assert all(isinstance(c, TrainConfig) for c in a)           # validated once, passed on as objects
    ids = [c.run_id() for c in a]
    assert len(set(ids)) == len(ids)
    assert all(c.gt_weight is None for c in a if c.method == "ce")
    # The seed varies fastest; ids do not depend on out_dir or device.
    assert [c.seed for c in a[:3]] == [0, 1, 2]
    assert a[0].replace(out_dir="elsewhere", device="cpu").run_id() == ids[0]
    with pytest.raises(ValueError, match=r"unknown method 'kdd'.*sd_kd"):
        expand_grid(base, methods=["kdd"])


def test_shards_partition_the_grid():
    configs = expand_grid({"dataset": "digits"}, methods=["sd_kd"], gt_weights=[0.2, 0.4, 0.6], seeds=[0, 1, 2, 3])
    shards = [select_shard(configs, i, 5) for i in range(5)]
    flat = [c.run_id() for s in shards for c in s]
    assert sorted(flat) == sorted(c.run_id() for c in configs) and len(flat) == len(configs)
    assert shards[1] == configs[1::5]
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "a/b", "1", "-1/3"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_sweep_skips_finished_runs_on_restart(tmp_path, capsys):
    argv = ["sweep", *TINY_ARGS, "--methods", "sd_kd", "ce", "--gt-weight", "0.5", "--generations", "2",
            "--seeds", "0", "1", "--out-dir", str(tmp_path), "--quiet", "--jobs", "1"]
    assert cli.main(argv) == 0
    records = sorted((tmp_path / "runs").glob("*/record.json"))
    assert len(records) == 4
    stamps = {p: p.stat().st_mtime_ns for p in records}
    with open(tmp_path / "rollup.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 and all(r["n_seeds"] == "2" and r["test_accuracy_sd"] != "" for r in rows)
    err = capsys.readouterr().err
    assert "it/s" not in err and "s/it" not in err                 # no progress bar off a terminal

    # Restart after one run lost its record (as if killed after its last generation): only it reruns.
    lost = records[0]
    lost.unlink()
    assert cli.main(argv) == 0
    assert all(p.stat().st_mtime_ns == stamps[p] for p in records[1:])
    assert lost.exists()


def test_run_one_returns_a_finished_record_without_training(tmp_path, monkeypatch):
    import deepdistill.drivers.local_runner
    import deepdistill.engine.train

    cfg = expand_grid({"dataset": "digits", "model": "mlp", "epochs": 1, "n_train": 300, "device": "cpu",
                       "model_kwargs": {"hidden": 8, "depth": 1}}, methods=["ce"], generations=[1])[0]
    # One record read and one validation (the run folder's config) per run, however the run is reached.
    reads, validations = [], []
    inspect_record, read_record, validate = (deepdistill.engine.train.inspect_record, deepdistill.drivers.local_runner.read_record,
                                             TrainConfig._validate)
    monkeypatch.setattr(deepdistill.engine.train, "inspect_record", lambda path: reads.append(path) or inspect_record(path))
    monkeypatch.setattr(deepdistill.drivers.local_runner, "read_record", lambda path: reads.append(path) or read_record(path))
    monkeypatch.setattr(TrainConfig, "_validate", lambda self: validations.append(1) or validate(self))
    first = run_one(cfg, tmp_path)
    assert (run_dir_for(cfg, tmp_path) / RECORD_FILE).exists()
    assert len(reads) == 1 and len(validations) == 1

    def fail(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(deepdistill.engine.train, "_train_run", fail)
    assert run_one(cfg, tmp_path) == first
    assert run_sweep([cfg], tmp_path) == [first]
    assert len(reads) == 3 and len(validations) == 1
    with pytest.raises(ValueError, match=r"unknown backend 'slurm'.*local.*ray"):
        run_sweep([cfg], tmp_path, backend="slurm")
    with pytest.raises(ValueError, match=r"\['address'\] do not apply to the local backend"):
        run_sweep([cfg], tmp_path, backend="local", address="auto")


def test_train_command_writes_a_record_and_prints_a_table(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", *TINY_ARGS, "--method", "sd_zs", "--generations", "2", "--out-dir", str(out),
                     "--quiet"]) == 0
    record = json.loads((out / "record.json").read_text())
    assert [g["loss"] for g in record["generations"]] == ["ce", "zs"]
    printed = capsys.readouterr().out
    assert "test_acc" in printed and "record:" in printed


def test_train_from_a_config_file_with_overrides(tmp_path):
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"dataset": "digits", "model": "mlp", "n_train": 300, "epochs": 1, "method": "ce",
                                    "generations": 1, "lr": 0.5, "device": "cpu"}))
    # --lr 0.01 is also the option's default: typed, it still overrides the file's 0.5.
    assert cli.main(["train", "--config", str(cfg_file), "--lr", "0.01", "--out-dir", str(tmp_path / "r"), "--quiet"]) == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["lr"] == 0.01 and config["method"] == "ce" and config["n_train"] == 300


@pytest.mark.parametrize("extra, message", [
    (["--gt-weight", "1.5"], "`gt_weight`"),
    (["--temperature", "0"], "`temperature` must be > 0"),
    (["--data-options", '{"bogus": 1}'], "unknown option(s) ['bogus'] for dataset 'digits'"),
])
def test_bad_input_ends_with_one_clear_line(tmp_path, capsys, extra, message):
    assert cli.main(["train", *TINY_ARGS, "--out-dir", str(tmp_path / "r"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: ") and message in err.splitlines()[-1] and "Traceback" not in err


def test_unknown_choice_is_rejected_by_argparse_listing_valid_ones(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--method", "distill"])
    assert "invalid choice: 'distill'" in capsys.readouterr().err
