"""The README's code for your own network runs as printed: both snippets of "Estimate the weight for
your own network" are extracted and executed in order, in one namespace (the second uses the first's
data and class), in an empty folder. About 10 s on 2 busy cores."""
from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "### Estimate the weight for your own network"


def readme_snippets(title: str = SECTION) -> list[str]:
    """The ```python blocks of the README section ``title`` (up to the next heading of its level or above)."""
    text = README.read_text(encoding="utf-8")
    start = text.index(title)
    end = min(i for i in (text.find("\n### ", start + 1), text.find("\n## ", start + 1)) if i > 0)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_the_readme_snippets_for_your_own_network_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)              # tiny networks on a shared machine: one thread is fastest
    try:
        first, second = readme_snippets()
        namespace = {"__name__": "readme_snippet"}
        exec(compile(first, "README: your own network", "exec"), namespace)
        result = namespace["result"]
        assert isinstance(result.student, namespace["MyNet"]) and result.estimators[result.chosen].ok
        assert f"gt_weight {result.gt_weight:.2f} (from {result.chosen})" in capsys.readouterr().out
        assert (tmp_path / "my_estimate" / "estimate_weight.json").is_file()
        exec(compile(second, "README: your own training loop", "exec"), namespace)
        own = namespace["result"]
        from deepdistill.studies.weight_estimation import DEFAULT_ESTIMATORS
        assert own.chosen == DEFAULT_ESTIMATORS[0] and own.settings["seed"] == 0 and isinstance(own.student, namespace["MyNet"])
    finally:
        torch.set_num_threads(threads)
