"""``stylefw batch``: the job grid, its ids and names, the manifest, skipping and resuming, failures, the
contact sheet, and the jobs shared among torchrun's processes on the CPU (gloo)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import stylefw
from stylefw.recipe import override
from stylefw.tools.batch.jobs import expand_inputs, job_id, parse_grid, plan_jobs
from stylefw.engine.files import checkpoint_path
from stylefw.cli import main
from stylefw.tools.batch.manifest import DONE, FAILED_JOB, MANIFEST, RankLog, read_records
from stylefw.tools.sheet import SHEET_KEY, Cell, contact_sheet, write_sheet

from test_resume import stop_after
from test_stages import write_image

pytestmark = pytest.mark.filterwarnings("ignore::stylefw.errors.StylefwWarning")  # random weights, on purpose

GRID = ["losses[1].weight=1e2,1e4"]


def write_inputs(folder: Path) -> Path:
    """Two contents and three styles, seeded, and a recipe of 4 steps at 32 px on random VGG-19 weights."""
    (folder / "photos").mkdir()
    (folder / "styles").mkdir()
    for seed, name in enumerate(("a", "b")):
        write_image(folder / "photos" / f"{name}.png", 40, 30, seed)
    for seed, name in enumerate(("x", "y", "z"), 10):
        write_image(folder / "styles" / f"{name}.png", 32, 32, seed)
    recipe = {"content": "photos/a.png", "style": "styles/x.png", "size": 32, "steps": 4, "device": "cpu",
              "backbone": {"name": "vgg19", "weights": "random"},
              "losses": [{"name": "content", "layers": ["relu2_1"]},
                         {"name": "gram", "weight": 1000, "layers": ["relu1_1", "relu2_1"]}],
              "optimizer": {"name": "adam", "lr": 0.05}}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return folder / "recipe.yaml"


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return write_inputs(tmp_path)


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST).read_text(encoding="utf-8").splitlines()]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_the_grid_its_names_and_ids_do_not_depend_on_the_arguments_order_or_the_folder(inputs, tmp_path):
    plan = lambda contents, styles, grid, out="out", base=tmp_path: plan_jobs(
        base / "recipe.yaml", [], expand_inputs(contents, "--content"), expand_inputs(styles, "--style"),
        parse_grid(grid), Path(out))
    jobs = plan(["photos"], ["styles/*.png"], GRID + ["steps=3,4"])
    again = plan(["photos/b.png", "photos/a.png"], ["styles/z.png", "styles/y.png", "styles/x.png"],
                 ["steps=3,4"] + GRID)
    assert len(jobs) == 2 * 3 * 2 * 2
    assert [(job.index, job.id, job.name) for job in jobs] == [(job.index, job.id, job.name) for job in again]
    assert jobs[0].name == "a--x--losses1.weight=1e2--steps=3" and jobs[-1].name == "b--z--losses1.weight=1e4--steps=4"
    assert len({job.id for job in jobs}) == len(jobs)
    # the same bytes elsewhere, written to another folder: the same work, so the same ids
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tmp_path, elsewhere, ignore=shutil.ignore_patterns("elsewhere"))
    moved = plan([str(elsewhere / "photos")], [str(elsewhere / "styles")], GRID + ["steps=3,4"], elsewhere / "other",
                 elsewhere)
    assert [job.id for job in moved] == [job.id for job in jobs]
    # a key that changes pixels changes the id; one that only says where files go does not
    assert job_id(override(jobs[0].recipe, {"seed": 7})) != jobs[0].id
    assert job_id(override(jobs[0].recipe, {"checkpoint_every": 2, "device": "cpu"})) == jobs[0].id


def test_two_inputs_with_one_name_get_their_ids_in_their_names(inputs, tmp_path):
    (tmp_path / "more").mkdir()
    write_image(tmp_path / "more" / "a.png", 40, 30, 7)
    jobs = plan_jobs(tmp_path / "recipe.yaml", [], expand_inputs(["photos/a.png", "more/a.png"], "--content"), [],
                     [], tmp_path / "out")
    assert sorted(job.name for job in jobs) == sorted(f"a--x-{job.id[:8]}" for job in jobs)


@pytest.mark.parametrize(("given", "words"), [
    (["--content", "nowhere/*.png"], "--content nowhere/*.png: the pattern matches no image"),
    (["--style", "missing.png"], "--style missing.png: the file does not exist"),
    (["--grid", "steps"], "--grid steps: expected KEY=VALUE1,VALUE2"),
    (["--grid", "steps=3,,4"], "has an empty value"),
    (["--grid", "steps=3", "--grid", "steps=4"], "--grid steps is given twice"),
    (["--grid", "losses[7].weight=1,2"], "--grid losses[7].weight: index 7 is out of range"),
    (["--grid", "losses[1].weight=1,abc"], "(the job with --grid values losses[1].weight=abc)"),
    (["--out", "recipe.yaml"], "--out recipe.yaml is a file"),
])
def test_bad_batch_arguments_exit_2_with_one_message(inputs, tmp_path, capsys, given, words):
    assert main(["batch", "recipe.yaml", "--out", "out", *given]) == 2
    error = capsys.readouterr().err
    assert words in error and "Traceback" not in error
    assert not (tmp_path / "out" / MANIFEST).exists()


def test_a_batch_runs_every_job_records_it_and_a_rerun_skips_the_done(inputs, tmp_path, capsys):
    command = ["batch", "recipe.yaml", "--out", "out", "--content", "photos", "--grid", GRID[0], "--progress", "plain"]
    assert main(command) == 0
    out = tmp_path / "out"
    records = manifest(out)
    assert [record["name"] for record in records] == ["a--x--losses1.weight=1e2", "a--x--losses1.weight=1e4",
                                                      "b--x--losses1.weight=1e2", "b--x--losses1.weight=1e4"]
    for record in records:
        assert record["status"] == DONE and record["attempts"] == 1 and record["steps"] == 4
        assert record["content"].endswith(f"{record['name'][0]}.png") and record["style"][0].endswith("x.png")
        assert record["overrides"] == [f"losses[1].weight={record['grid']['losses[1].weight']}"]
        assert set(record["final_losses"]) == {"total", "content", "gram"}
        output = Path(record["output"])
        assert output.parent == out.resolve() and output.is_file()
        sidecar = json.loads(Path(f"{output}.json").read_text(encoding="utf-8"))
        assert sidecar["recipe"]["losses"][1]["weight"] == float(record["grid"]["losses[1].weight"])
    assert not list(out.glob("manifest.rank-*")) and not list(out.glob("*.ckpt")) and not list(out.glob(".*"))
    assert "4         0              0                        0" in capsys.readouterr().out
    before = {path: path.stat().st_mtime_ns for path in out.glob("*.png")}
    assert main(command) == 0
    assert "0         0              0                        4" in capsys.readouterr().out
    assert {path: path.stat().st_mtime_ns for path in out.glob("*.png")} == before
    assert [record["attempts"] for record in manifest(out)] == [1, 1, 1, 1]
    # a deleted output runs again; the rest are still skipped
    Path(records[2]["output"]).unlink()
    assert main(command) == 0
    assert [record["attempts"] for record in manifest(out)] == [1, 1, 2, 1]


def test_a_failed_job_is_recorded_and_the_others_still_run(inputs, tmp_path, capsys):
    (tmp_path / "photos" / "broken.png").write_bytes(b"not a png")
    code = main(["batch", "recipe.yaml", "--out", "out", "--content", "photos", "--progress", "plain"])
    assert code == 1
    records = {record["name"]: record for record in manifest(tmp_path / "out")}
    assert [records[name]["status"] for name in ("a--x", "b--x")] == [DONE, DONE]
    assert records["broken--x"]["status"] == FAILED_JOB and "broken.png" in records["broken--x"]["error"]
    assert "failed: broken--x:" in capsys.readouterr().out


def test_an_interrupted_job_continues_from_its_checkpoint(inputs, tmp_path):
    """The image a resumed job ends with is the one an uninterrupted job makes, bit for bit (CPU)."""
    out = tmp_path / "out"
    jobs = plan_jobs(tmp_path / "recipe.yaml", [], [], [], parse_grid(["steps=6"]), out)
    (job,) = jobs
    out.mkdir()
    RankLog(out, 0).write(job, "running")
    stopped = stylefw.run(job.recipe, on_event=stop_after(3))
    assert stopped.stopped is not None and checkpoint_path(job.output).is_file()
    assert main(["batch", "recipe.yaml", "--out", "out", "--grid", "steps=6", "--progress", "plain"]) == 0
    (record,) = manifest(out)
    assert record["status"] == DONE and record["resumed"] is True and record["attempts"] == 2
    whole = stylefw.run(job.recipe, save=False)
    assert np.array_equal(pixels(job.output), np.asarray(whole.image))
    assert not checkpoint_path(job.output).exists()


def test_a_contact_sheet_of_two_rows_and_three_columns(tmp_path):
    cells = []
    for row, content in enumerate(("a", "b")):
        for column, weight in enumerate(("1e2", "1e3", "1e4")):
            picture = tmp_path / f"{content}{column}.png"
            Image.new("RGB", (40, 30), (40 * row + 10, 60 * column + 20, 200)).save(picture)
            cells.append(Cell(content, ("starry", f"losses[1].weight={weight}"), picture))
    cells[-1] = Cell("b", ("starry", "losses[1].weight=1e4"), None, "failed")
    sheet = contact_sheet(cells, cell=64)
    path = write_sheet(sheet, tmp_path / "sheet.png")
    with Image.open(path) as image:
        layout = json.loads(image.text[SHEET_KEY])
        drawn = np.asarray(image.convert("RGB")).astype(int)
    assert layout["rows"] == ["a", "b"]
    assert layout["columns"] == [["starry", f"losses[1].weight={weight}"] for weight in ("1e2", "1e3", "1e4")]
    left, top = layout["origin"]
    assert layout["size"] == [left + 3 * (64 + 8), top + 2 * (64 + 8)] == list(drawn.shape[1::-1])
    assert top >= 2 * 18  # two lines of column labels
    # each label is drawn: dark pixels in each column's label band and beside each row
    for column in range(3):
        band = drawn[:top, left + column * 72:left + column * 72 + 64]
        assert (band.sum(axis=2) < 200).sum() > 20
    for row in range(2):
        band = drawn[top + row * 72:top + row * 72 + 64, :left - 8]
        assert (band.sum(axis=2) < 200).sum() > 10
    # a 40×30 picture fills its 64 px cell's width, centred; a missing one is grey
    middle = drawn[top + 32, left + 1 * 72 + 32]
    assert tuple(middle) == (10, 80, 200)
    assert tuple(drawn[top + 72 + 5, left + 2 * 72 + 5]) == (200, 200, 200)


# torchrun on the CPU: two processes, gloo

def torchrun(tmp_path: Path, out: str, *extra: str, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "stylefw", "batch", "recipe.yaml", "--out", out, "--content", "photos", "--style", "styles",
               "--threads", "1", "--progress", "plain", *extra]
    environment = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **popen)


def test_torchrun_shares_the_jobs_and_makes_what_one_process_makes(inputs, tmp_path):
    """6 jobs on 2 ranks: each runs once, on one rank, and each output equals the single process's."""
    done = torchrun(tmp_path, "shared")
    log, _ = done.communicate(timeout=600)
    assert done.returncode == 0, log
    assert main(["batch", "recipe.yaml", "--out", "single", "--content", "photos", "--style", "styles",
                 "--threads", "1", "--progress", "plain"]) == 0
    shared, single = manifest(tmp_path / "shared"), manifest(tmp_path / "single")
    assert [record["id"] for record in shared] == [record["id"] for record in single] and len(shared) == 6
    assert all(record["status"] == DONE and record["attempts"] == 1 for record in shared)
    assert [record["rank"] for record in shared] == [0, 1, 0, 1, 0, 1]  # round-robin over the job list
    for ours, theirs in zip(shared, single):
        assert np.array_equal(pixels(Path(ours["output"])), pixels(Path(theirs["output"])))
    assert "[rank 0]" in log and "[rank 1]" in log and log.count("batch of 6 jobs") == 1


def test_a_killed_rank_loses_no_job_and_a_rerun_finishes_each_once(inputs, tmp_path):
    """Kill rank 1 in the middle of a job (SIGKILL: it cannot tidy up); torchrun stops rank 0 too. Every file
    left is whole, and the rerun runs only the jobs that did not finish, the killed ones from checkpoints."""
    slow = ["--steps", "300", "--checkpoint-every", "10"]
    running = torchrun(tmp_path, "out", *slow, start_new_session=True)
    out, victim = tmp_path / "out", None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline:  # rank 1's job has written a checkpoint
        records = [record.data for record in read_records(out) if record.data.get("rank") == 1] if out.exists() else []
        if records and records[-1]["status"] == "running" and checkpoint_path(records[-1]["output"]).exists():
            victim = records[-1]
        time.sleep(0.2)
    assert victim is not None, "rank 1 never got into a job"
    os.kill(victim["pid"], signal.SIGKILL)
    log, _ = running.communicate(timeout=300)
    assert running.returncode != 0, log
    # SIGKILL can land in the middle of a write: a temporary file of the victim's may be left, never a final name
    victims = {Path(victim["output"]).name + suffix for suffix in ("", ".json", ".ckpt")}
    assert {part.name.rsplit(".", 2)[0][1:] for part in out.glob(".*.part")} <= victims
    first, resumable = {}, set()
    for record in read_records(out):
        first[record.id] = record.data["status"]
        if record.data["status"] == DONE:
            Image.open(record.data["output"]).verify()
        elif checkpoint_path(record.data["output"]).exists():
            resumable.add(record.id)
    assert first[victim["id"]] == "running" and victim["id"] in resumable
    rerun = torchrun(tmp_path, "out", *slow)
    log, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, log
    records = {record["id"]: record for record in manifest(out)}
    assert len(records) == 6 and all(record["status"] == DONE for record in records.values())
    for ident, status in first.items():
        # done before: not run again; cut short: one more attempt, continuing from its checkpoint
        assert records[ident]["attempts"] == (1 if status == DONE else 2), (ident, status)
        assert records[ident]["resumed"] is (ident in resumable)
    for record in records.values():
        assert pixels(Path(record["output"])).shape == (24, 32, 3)
        assert json.loads(Path(f"{record['output']}.json").read_text(encoding="utf-8"))["steps_done"] == 300
    assert not list(out.glob("*.ckpt")) and not list(out.glob(".*.part"))


def test_batch_size_runs_jobs_of_one_shape_together_with_the_same_results(inputs, tmp_path):
    """2 contents × 3 styles × 2 step counts: jobs differing only in their images share a batch, three at a
    time; the step counts never mix. Each picture is the one the job makes alone, to float32 rounding."""
    command = ["batch", "recipe.yaml", "--content", "photos", "--style", "styles", "--grid", "steps=3,4",
               "--progress", "plain"]
    assert main([*command, "--out", "alone"]) == 0
    assert main([*command, "--out", "together", "--batch-size", "3"]) == 0
    alone, together = manifest(tmp_path / "alone"), manifest(tmp_path / "together")
    assert [record["id"] for record in together] == [record["id"] for record in alone]
    assert all(record["status"] == DONE and record["attempts"] == 1 for record in together)
    assert not any("together" in single for single in alone)
    # the 12 jobs in 4 batches: a's three styles at 3 steps, a's at 4 steps, then b's
    names = {record["id"]: record["name"] for record in together}
    batches = {tuple(names[ident] for ident in record["together"]) for record in together}
    assert batches == {tuple(f"{content}--{style}--steps={steps}" for style in "xyz")
                       for content in "ab" for steps in (3, 4)}
    for single, lane in zip(alone, together):
        assert lane["steps"] == single["steps"]
        assert lane["final_losses"]["total"] == pytest.approx(single["final_losses"]["total"], rel=1e-3)
        difference = np.abs(pixels(Path(lane["output"])).astype(float) - pixels(Path(single["output"])))
        assert difference.mean() < 0.1
