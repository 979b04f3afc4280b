"""The package works from a built wheel (configs shipped inside) and takes users' config directories."""

import subprocess
import sys

import pytest

from tests.conftest import REPO


def _run(args, cwd, env=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.mark.slow
def test_wheel_ships_the_config_tree_and_runs(tmp_path):
    import os

    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    built = _run(["-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheel_dir), str(REPO)], tmp_path)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheel_dir.glob("*.whl")
    installed = _run(["-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)], tmp_path)
    assert installed.returncode == 0, installed.stderr
    assert (target / "diffusion_lab" / "conf" / "experiment" / "quickstart.yaml").is_file()
    env = {**os.environ, "PYTHONPATH": str(target)}
    shown = _run(["-m", "diffusion_lab", "+experiment=quickstart", "--cfg", "job"], tmp_path, env)
    assert shown.returncode == 0, shown.stderr
    assert "quickstart" in shown.stdout and "LogLinearSchedule" in shown.stdout
    where = _run(["-c", "import diffusion_lab; print(diffusion_lab.__file__)"], tmp_path, env)
    assert str(target) in where.stdout  # the wheel's copy, not the checkout


@pytest.mark.slow
def test_user_config_directory_on_the_search_path(tmp_path):
    mine = tmp_path / "myconf" / "experiment"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("# @package _global_\ndefaults:\n  - override /masking: cosine\nseed: 1234\n")
    shown = _run(["-m", "diffusion_lab", "--config-dir", str(tmp_path / "myconf"), "+experiment=mine", "--cfg", "job"], REPO)
    assert shown.returncode == 0, shown.stderr
    assert "seed: 1234" in shown.stdout and "CosineSchedule" in shown.stdout
    via_searchpath = _run(["-m", "diffusion_lab", f"hydra.searchpath=[file://{tmp_path / 'myconf'}]",
                           "+experiment=mine", "--cfg", "job"], REPO)
    assert via_searchpath.returncode == 0, via_searchpath.stderr
    assert "seed: 1234" in via_searchpath.stdout
