"""``--preview``: the page's server against a real run at 32 px, over HTTP, as a browser would use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from test_stages import write_image

STOPPED = "stopped from preview"


@pytest.fixture
def running(tmp_path: Path):
    """A long run at 32 px with --preview (the page up 30 s after it), and its URL."""
    write_image(tmp_path / "content.png", 40, 30, 1)
    write_image(tmp_path / "style.png", 32, 32, 2)
    recipe = {"content": "content.png", "style": "style.png", "size": 32, "steps": 20000, "device": "cpu",
              "backbone": {"name": "vgg19", "weights": "random"}, "output": "out.png",
              "losses": [{"name": "content", "layers": ["relu2_1"]},
                         {"name": "gram", "weight": 1000, "layers": ["relu1_1", "relu2_1"]}],
              "optimizer": {"name": "adam", "lr": 0.02}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "stylefw", "recipe", "recipe.yaml", "--preview",
                                "--preview-linger", "30", "--progress", "plain", "--log-every", "100000"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONWARNINGS": "ignore"})
    line = process.stdout.readline()
    assert line.startswith("preview: http://127.0.0.1:"), line + process.stderr.read()
    yield process, line.split(" ", 1)[1].strip(), tmp_path
    process.kill()
    process.wait()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post(url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def at(url: str, path: str, token: str | None = "keep") -> str:
    parts = urlsplit(url)
    query = parts.query if token == "keep" else (f"token={token}" if token is not None else "")
    return f"{parts.scheme}://{parts.netloc}{path}" + (f"?{query}" if query else "")


def status(url: str) -> dict:
    code, body = get(at(url, "/status"))
    assert code == 200
    return json.loads(body)


def test_the_page_follows_the_run_and_stop_ends_it_with_the_reason(running):
    process, url, folder = running
    code, page = get(url)
    assert code == 200 and b"stylefw preview" in page
    seen, pictures = [], set()
    deadline = time.monotonic() + 60
    while len(pictures) < 3 and time.monotonic() < deadline:
        found = status(url)  # parses at every poll
        seen.append(found)
        if found.get("image"):
            code, png = get(at(url, "/image.png"))
            assert code == 200 and png.startswith(b"\x89PNG")
            pictures.add(png)
        time.sleep(0.6)
    assert len(pictures) >= 3, "the picture did not change between polls"
    last = seen[-1]
    assert last["state"] == "running" and last["device"] == "cpu" and last["recipe"]["size"] == 32
    losses = last["losses"]
    assert losses["labels"] == ["content", "gram"] and losses["done"][-1] == last["done"]
    assert len(losses["total"]) == len(losses["terms"]) == len(losses["done"]) <= 1000
    assert last["step"] > seen[0].get("step", 0) and last["rate"] > 0 and last["memory"]["bytes"] > 0
    assert post(at(url, "/snapshot")) == 202
    assert post(at(url, "/stop")) == 202
    deadline = time.monotonic() + 30
    while status(url)["state"] != "done" and time.monotonic() < deadline:
        time.sleep(0.2)
    final = status(url)
    assert final["state"] == "done" and final["stopped"]["reason"] == STOPPED
    sidecar = json.loads((folder / "out.png.json").read_text(encoding="utf-8"))
    assert sidecar["stopped"]["reason"] == STOPPED and sidecar["steps_done"] == final["stopped"]["step"]
    assert final["saved"] and Path(final["saved"]).is_file()  # the snapshot, beside the output
    process.kill()  # the page would stay up for --preview-linger; closing it early loses nothing
    assert (folder / "out.png").is_file()


def test_two_tabs_and_a_closed_one_leave_the_run_alone(running):
    """Two pollers at once both get whole answers; a client that hangs up mid-reply changes nothing."""
    import socket
    import threading

    _, url, _ = running
    deadline = time.monotonic() + 60
    while not status(url).get("image") and time.monotonic() < deadline:  # the first picture is out
        time.sleep(0.2)
    answers: list[tuple[str, int]] = []

    def tab() -> None:
        for _ in range(10):
            answers.append((json.loads(get(at(url, "/status"))[1])["state"], get(at(url, "/image.png"))[0]))

    tabs = [threading.Thread(target=tab) for _ in range(2)]
    for thread in tabs:
        thread.start()
    parts = urlsplit(url)
    for _ in range(5):  # ask for the picture and hang up before reading it
        with socket.create_connection((parts.hostname, parts.port)) as hung_up:
            hung_up.sendall(f"GET /image.png?{parts.query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    for thread in tabs:
        thread.join()
    assert answers == [("running", 200)] * 20
    before = status(url)["done"]
    time.sleep(1.5)
    assert status(url)["state"] == "running" and status(url)["done"] > before


def test_a_request_without_the_token_is_refused(running):
    _, url, _ = running
    for path in ("/", "/status", "/image.png"):
        assert get(at(url, path, token=None))[0] == 403
        assert get(at(url, path, token="guess"))[0] == 403
    assert post(at(url, "/stop", token=None)) == 403
    assert post(at(url, "/stop", token="guess")) == 403
    assert status(url)["state"] in ("starting", "running")  # a refused stop stopped nothing


@pytest.mark.skipif(not Path("/proc/net/tcp").is_file(), reason="reads the listening sockets from /proc/net/tcp")
def test_the_server_listens_on_the_loopback_address_only(running):
    _, url, _ = running
    port = urlsplit(url).port
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if Path(table).is_file():
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    listening.append(local.rsplit(":", 1)[0])
    assert listening == ["0100007F"]  # 127.0.0.1, and nothing on IPv6 or any other address


def test_a_batch_preview_shows_each_job_and_stop_ends_the_batch(tmp_path):
    """Two contents × two styles: thumbnails appear as jobs end; Stop ends the current job (resumable) and
    the batch, which exits 0, as a stop asked for does."""
    for index in range(2):
        write_image(tmp_path / f"content{index}.png", 40, 30, index)
        write_image(tmp_path / f"style{index}.png", 32, 32, 10 + index)
    recipe = {"content": "content0.png", "style": "style0.png", "size": 32, "steps": 400, "device": "cpu",
              "backbone": {"name": "vgg19", "weights": "random"},
              "losses": [{"name": "content", "layers": ["relu2_1"]}, {"name": "gram", "weight": 1000, "layers": ["relu1_1"]}],
              "optimizer": {"name": "adam", "lr": 0.02}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "stylefw", "batch", "recipe.yaml", "--out", "out", "--content",
                                "content0.png", "--content", "content1.png", "--style", "style0.png", "--style",
                                "style1.png", "--preview", "--preview-linger", "5", "--progress", "plain"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        url = process.stdout.readline().split(" ", 1)[1].strip()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            # the page is up before the batch has planned its jobs: until then the status has no batch
            jobs = status(url).get("batch", {"jobs": []})["jobs"]
            if [job["status"] for job in jobs[:2]] == ["done", "running"]:
                break
            time.sleep(0.3)
        assert [job["name"] for job in jobs] == ["content0--style0", "content0--style1", "content1--style0",
                                                 "content1--style1"]
        code, png = get(at(url, "/thumbnail.png") + "&job=0")
        assert code == 200 and png.startswith(b"\x89PNG")
        assert get(at(url, "/thumbnail.png") + "&job=3")[0] == 404  # not run yet
        assert post(at(url, "/stop")) == 202
        while status(url)["batch"]["state"] != "done" and time.monotonic() < deadline:
            time.sleep(0.3)
        jobs = status(url)["batch"]["jobs"]
        assert [job["status"] for job in jobs] == ["done", "interrupted", "waiting", "waiting"]
        assert process.wait(timeout=60) == 0  # after its linger: a stop asked for is not an error
    finally:
        process.kill()
    records = {record["name"]: record for record in map(json.loads, (tmp_path / "out" / "manifest.jsonl").open())}
    assert records["content0--style1"]["error"] == f"stopped: {STOPPED}"
    assert (tmp_path / "out" / "content0--style1.png.ckpt").is_file()  # the rerun continues it
