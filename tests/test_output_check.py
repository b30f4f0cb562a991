"""The output, checked before any work: where it cannot be written, or where writing it would overwrite an input,
the CLI exits 2 naming the path and leaves every file as it was; a full disk keeps the previous output."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import yaml
from PIL import Image

import stylefw.engine.session
import stylefw.plugins.sidecar
from stylefw.engine.outputs import written_paths

from test_cli import TINY, error_lines, run, work  # noqa: F401 (work is a fixture)

pytestmark = pytest.mark.filterwarnings("ignore::stylefw.errors.StylefwWarning")  # random weights, on purpose


def files(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for a folder): what a failed command must not change."""
    return {str(path.relative_to(folder)): None if path.is_dir() else path.read_bytes()
            for path in sorted(folder.rglob("*")) if "cache" not in path.parts}


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a run gets as far as decoding an image or building the backbone."""
    def started(*args, **kwargs):
        raise AssertionError("the run started before its output was checked")

    monkeypatch.setattr(stylefw.engine.session, "open_inputs", started)
    monkeypatch.setattr(stylefw.engine.session, "build_backbone", started)


def refused(work: Path, capsys, argv: list[str], *message: str) -> str:
    """Run ``argv``, expecting exit 2, one error naming ``message``, no traceback, and no file changed."""
    before = files(work)
    code, out, err = run(argv, capsys)
    assert code == 2, err
    lines = error_lines(err)
    assert len(lines) == 1 and all(part in lines[0] for part in message), err
    assert "Traceback" not in err and "hint: " in err
    assert files(work) == before
    return err


def test_a_missing_folder_is_refused_with_how_to_create_it(work, capsys, no_work):
    err = refused(work, capsys, ["recipe", "tiny.yaml", "--output", "renders/out.png"],
                  f"cannot write {work / 'renders' / 'out.png'}: the folder {work / 'renders'} does not exist")
    assert f"mkdir -p {work / 'renders'}" in err


def test_a_file_as_the_folder_is_refused(work, capsys, no_work):
    (work / "renders").write_text("not a folder")
    refused(work, capsys, ["recipe", "tiny.yaml", "--output", "renders/out.png"], "renders is a file, not a folder")


def test_a_directory_as_the_output_is_refused(work, capsys, no_work):
    (work / "out.png").mkdir()
    refused(work, capsys, ["recipe", "tiny.yaml"], f"cannot write the output {work / 'out.png'}: out.png is a directory")


def test_a_directory_as_the_sidecar_is_refused(work, capsys, no_work):
    (work / "out.png.json").mkdir()
    refused(work, capsys, ["recipe", "tiny.yaml"], "metadata file", "out.png.json is a directory")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes to any folder")
def test_an_unwritable_folder_is_refused(work, capsys, no_work):
    (work / "locked").mkdir()
    (work / "locked").chmod(0o555)
    try:
        refused(work, capsys, ["recipe", "tiny.yaml", "--output", "locked/out.png"], "locked is not writable")
    finally:
        (work / "locked").chmod(0o755)


def test_an_unwritable_folder_as_the_os_reports_it(work, capsys, no_work, monkeypatch):
    # the same check where the tests run as root, for whom every folder is writable
    (work / "locked").mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path).name != "locked" and access(path, mode))
    refused(work, capsys, ["recipe", "tiny.yaml", "--output", "locked/out.png"], "locked is not writable")


def test_a_sidecar_that_would_overwrite_the_recipe_is_refused(work, capsys, no_work):
    # stylefw recipe out.png.json, where the recipe's output is out.png
    (work / "tiny.yaml").rename(work / "out.png.json")
    refused(work, capsys, ["recipe", "out.png.json"],
            f"the output's metadata file {work / 'out.png.json'} is the recipe file")


def test_an_output_that_is_the_recipe_file_is_refused(work, capsys, no_work):
    (work / "tiny.yaml").rename(work / "recipe.png")
    refused(work, capsys, ["recipe", "recipe.png", "--output", "recipe.png"], "is the recipe file")


def test_an_output_linked_to_an_input_image_is_refused(work, capsys, no_work):
    (work / "link.png").symlink_to(work / "style.png")
    # validation resolves the output's links, and finds the input
    refused(work, capsys, ["recipe", "tiny.yaml", "--output", "link.png"], "tiny.yaml: 1 problem in recipe")


def test_a_sidecar_through_a_linked_folder_that_is_the_recipe_is_refused(work, capsys, no_work):
    (work / "here").symlink_to(work)
    (work / "tiny.yaml").rename(work / "out.png.json")
    refused(work, capsys, ["recipe", "here/out.png.json", "--output", "here/out.png"], "is the recipe file")


def test_a_sidecar_that_is_an_input_image_is_refused(work, capsys, no_work):
    os.replace(work / "content.png", work / "photo.png.json")
    Image.open(work / "photo.png.json").close()  # still an image, whatever its name
    refused(work, capsys, ["recipe", "tiny.yaml", "--content", "photo.png.json", "--output", "photo.png"],
            "is the content image")


def test_an_input_named_like_a_snapshot_is_refused(work, capsys, no_work):
    os.replace(work / "style.png", work / "out.000002.png")
    refused(work, capsys, ["recipe", "tiny.yaml", "--style", "out.000002.png", "--set", "save_every=2"],
            "has the name of a save_every snapshot")


def test_the_files_a_run_writes():
    output = Path("/renders/out.png")
    assert list(written_paths(output)) == [output, Path("/renders/out.png.json")]


def test_a_full_disk_names_the_output_and_keeps_the_previous_one(work, capsys, monkeypatch):
    assert run(["recipe", "tiny.yaml", "--quiet"], capsys)[0] == 0
    before = files(work)

    def full(data):
        def write(handle):
            handle.write(b"{")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write

    monkeypatch.setattr(stylefw.plugins.sidecar, "json_writer", full)  # the image is written, then the sidecar fails
    code, out, err = run(["recipe", "tiny.yaml", "--steps", "1", "--quiet"], capsys)
    assert code == 2, err
    assert error_lines(err) == [f"error: cannot write {work / 'out.png'} (the previous one is unchanged): "
                                f"{os.strerror(errno.ENOSPC)}"]
    assert "free some space" in err and "Traceback" not in err and ".part" not in err
    assert files(work) == before  # the previous image and sidecar, and no temporary file


def test_the_output_can_still_be_written_in_the_current_folder(work, capsys):
    yaml.safe_dump(TINY, (work / "other.yaml").open("w"))
    assert run(["recipe", "other.yaml", "--quiet", "--output", "other.png"], capsys)[0] == 0
    assert (work / "other.png").is_file() and (work / "other.png.json").is_file()


def test_a_run_clears_what_a_killed_run_at_its_output_left_and_nothing_else(work, capsys):
    """SIGKILL cannot tidy up: a write it cut short leaves its temporary file. The next run at that output
    deletes those of its own files (image, sidecar, checkpoint) and leaves everyone else's."""
    ours = [".out.png.k0wdiiof.part", ".out.png.json.abcd_123.part", ".out.png.ckpt.zz9zz9zz.part"]
    others = [".other.png.k0wdiiof.part", ".out.png.stray.part", ".out.png.k0wdiiof.part.bak", "out.png.k0wdiiof.part"]
    for name in ours + others:
        (work / name).write_bytes(b"half")
    assert run(["recipe", "tiny.yaml", "--quiet"], capsys)[0] == 0
    assert sorted(path.name for path in work.iterdir() if ".part" in path.name) == sorted(others)
