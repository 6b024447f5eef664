"""The numbers that the README and docs/ quote from a ``--fast`` script equal what the script prints, and
every relative link of README.md and docs/*.md resolves.

Checked (cheap: the kernel checks, some claims, one example; about 20 s of CPU on an idle core):
- ``python -m kerneldistill verify --fast``: 31 checks, all PASS, 13 of them yes/no (printed with "-"),
  as README.md and docs/kernel.md say;
- the claims registry (``--fast``): 15 claims of 11 papers; the claims the README lists as FAIL do FAIL and
  the cheap others PASS (the slower ones' PASS is asserted in their own test files); the README's kernel
  example runs;
- ``ntk_bridge_infinite_width``: the infinite-width weight 4.1347 quoted in docs/kernel_meets_deep.md and
  docs/claims.md; the bridge's published per-width weights in the docs' table;
- ``examples/ridge_weight_grid.py --fast``: every number it prints in its "true risk" table appears in
  docs/kernel_extensions.md's table, except the one the docs name as differing (0.01184 against 0.01243).
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md"))}


def _run(*args: str) -> str:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                              "PATH": "/usr/bin:/bin"})
    return out.stdout + out.stderr


# --- links ---------------------------------------------------------------------------------------

def _links(text: str) -> list[str]:
    return [m for m in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+://|mailto:|#", m)]


@pytest.mark.parametrize("name", ["README.md"] + [f"docs/{n}" for n in DOCS])
def test_every_relative_link_resolves(name):
    path = ROOT / name
    text = path.read_text(encoding="utf-8")
    missing = [link for link in _links(text) if not (path.parent / link.split("#")[0]).exists()]
    assert missing == [], f"{name}: links to nothing: {missing}"
    assert "../shared/" not in text and "shared/THEORY" not in text       # internal notes: never linked


def test_the_link_check_catches_a_broken_link(tmp_path):
    # The check above must be able to fail: a link to a missing page is found by _links and does not exist.
    links = _links("see [x](docs/nope.md) and [y](https://example.org) and [z](#anchor)")
    assert links == ["docs/nope.md"] and not (ROOT / links[0]).exists()


def test_the_readme_links_every_docs_page():
    for name in DOCS:
        assert f"(docs/{name})" in README, f"README.md does not link docs/{name}"


# --- python -m kerneldistill verify --fast -------------------------------------------------------

def test_verify_fast_counts_match_the_docs():
    out = _run("-m", "kerneldistill", "verify", "--fast")
    rows = [line for line in out.splitlines() if re.search(r"\s(PASS|FAIL)\s", line)]
    summary = re.search(r"(\d+)/(\d+) checks passed", out)
    assert summary, out[-2000:]
    passed, total = int(summary[1]), int(summary[2])
    yes_no = [r for r in rows if re.search(r"\s(PASS|FAIL)\s+-\s+-\s", r)]
    assert len(rows) == total and passed == total
    assert f"`verify` runs {total} checks: {total - len(yes_no)} print a measured error" in README
    assert f"{len(yes_no)} are yes/no checks" in README
    assert f"Of its {total} checks, {total - len(yes_no)} compare two numbers" in DOCS["kernel.md"]
    assert f"the other {len(yes_no)} are yes/no checks" in DOCS["kernel.md"]


# --- the claims ----------------------------------------------------------------------------------

# The claims that take under a second with --fast are run here; of the slower ones, only those the README
# lists as FAIL (each slower claim's PASS is asserted by its own test file: tests/test_paper_claims_*.py,
# tests/test_infinite_ntk.py), so that this file stays cheap.
CHEAP_CLAIMS = ("ba21_toy", "mfb20_fixed_budget", "dpr26_weights", "pareek_factor_d", "das_sanghavi_regression",
                "lecoiu_isotropic_ridge")


def _readme_failed() -> list[str]:
    listed = re.search(r"(\d+) PASS and (\d+) FAIL\s*\(([^)]*)\)", README)
    assert listed, "README.md: no 'N PASS and M FAIL (`name`, ...)'"
    names = re.findall(r"`(\w+)`", listed[3])
    assert int(listed[2]) == len(names)
    return sorted(names)


@pytest.fixture(scope="module")
def claims():
    from kerneldistill.claims import run_claims
    return {r.claim: r for r in run_claims(sorted(set(CHEAP_CLAIMS) | set(_readme_failed())), fast=True)}


def test_claims_fast_pass_fail_list_matches_the_readme(claims):
    from kerneldistill.claims import REGISTRY
    failed = _readme_failed()
    assert len(REGISTRY) == 15 and set(failed) <= set(REGISTRY)
    assert f"with `--fast`, {len(REGISTRY) - len(failed)} PASS and {len(failed)} FAIL" in README
    assert f"{len(REGISTRY)} claims of 11 papers" in README
    assert sorted(name for name, r in claims.items() if not r.passed) == failed
    assert all(claims[name].passed for name in CHEAP_CLAIMS)
    for name in REGISTRY:
        assert f"`{name}`" in DOCS["claims.md"] or name in DOCS["claims.md"], f"claim {name} is not in docs/claims.md"


def test_the_infinite_width_weight_and_the_bridge_weights_in_the_docs(claims):
    result = claims["ntk_bridge_infinite_width"]
    assert "4.1347" in str(result.measured)
    for page in ("kernel_meets_deep.md", "claims.md"):
        assert "4.1347" in DOCS[page]
    published = re.search(r"bridge kernel ([\d./]+); deep ([\d./]+)", str(result.published))
    table = DOCS["kernel_meets_deep.md"]
    for kernel, deep in zip(published[1].split("/"), published[2].split("/")):
        assert re.search(rf"\| \d+ \| {re.escape(kernel)} \| {re.escape(deep)} \|", table), (kernel, deep)


def test_the_readme_kernel_example_runs(capsys):
    block = README[README.index("### Verify a theorem"):]
    code = re.search(r"```python\n(.*?)```", block, flags=re.S)[1]
    exec(compile(code, "README: verify a theorem", "exec"), {"__name__": "readme_kernel"})
    weights = [float(w) for w in re.findall(r"[-\d.]+", capsys.readouterr().out)]
    assert len(weights) == 5 and all(0 <= w <= 1 for w in weights)        # steps 2..6, constrained


# --- examples/ridge_weight_grid.py --fast against docs/kernel_extensions.md ----------------------

def test_ridge_weight_grid_fast_matches_the_docs_table_but_the_named_value():
    out = _run("examples/ridge_weight_grid.py", "--fast")
    section = out[out.index("== true risk"):]
    numbers = re.findall(r"\d\.\d+(?:e-\d+)?", section.split("PASS")[0])
    assert len(numbers) >= 18, section
    text = DOCS["kernel_extensions.md"]
    table = "\n".join(line for line in text.splitlines() if line.startswith("|"))
    differing = [n for n in numbers if n not in table]
    assert differing == ["0.01184"], differing           # the one value the docs name as differing
    assert "0.01184 against 0.01243" in text


# --- the README's commands of "Draw the figures" and "Run a sweep" parse, and the sweeps expand ----

def _readme_commands(title: str) -> list[list[str]]:
    import shlex
    start = README.index(title)
    end = min(i for i in (README.find("\n### ", start + 1), README.find("\n## ", start + 1)) if i > 0)
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README[start:end], flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:2] == ["python", "-m"]:
                commands.append(words[2:])
    return commands


def test_the_readme_figure_commands_parse_and_name_real_figures():
    from analysis.__main__ import _parser
    from analysis.figures import FIGURES
    commands = _readme_commands("### Draw the figures and the report")
    assert len(commands) >= 4 and all(c[0] == "analysis" for c in commands)
    for words in commands:
        args = _parser().parse_args(words[1:])
        assert not (args.command != "list" and args.results is None and args.out is None), words
        for name in getattr(args, "names", []):
            assert name == "all" or name in FIGURES, name


def test_the_readme_sweeps_expand(tmp_path, monkeypatch, capsys):
    from deepdistill.cli import main
    monkeypatch.chdir(tmp_path)
    commands = _readme_commands("### Run a sweep")
    assert len(commands) == 2 and all(c[:2] == ["deepdistill", "sweep"] for c in commands)
    for words in commands:
        assert main(words[1:] + ["--dry-run"]) == 0, words
        assert len(capsys.readouterr().out.strip().splitlines()) >= 9    # 3 weights x 3 seeds at least
    assert not (tmp_path / "out").exists()                                 # a dry run trains and writes nothing
