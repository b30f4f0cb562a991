"""``--preview``: watch a run in the browser, served from this process to this machine only.

A ``Preview`` is a plugin on the run's hooks, registered as ``preview`` by the command line for the run. On the training thread it does as little as it can: it keeps each
step's loss tensor (no read from the device), reads the kept ones together about ten times a second, and
about once a second copies the picture to the host without waiting for the device and hands it to an
encoder thread, which waits for the copy and makes the PNG. The HTTP server runs on its own threads,
reads only what the subscriber has published under a lock, and passes the Stop and Save buttons back as
requests that the next step honours, as a Ctrl-C would be.

The page's server is :mod:`stylefw.tools.preview_server`.
"""

from __future__ import annotations

import io
import math
import resource
import threading
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..contracts.run import RunEnd, RunStart, StageStart, StepEvent
from ..engine.image import to_pil
from ..engine.events import Watcher
from ..engine.files import snapshot_path
from .timing import Work, format_duration

__all__ = ["Preview", "STOPPED", "READS_PER_SECOND", "IMAGE_EVERY", "CURVE_POINTS", "THUMBNAIL"]

STOPPED = "stopped from preview"
READS_PER_SECOND = 10  # losses read back from the device at most this often
IMAGE_EVERY = 1.0  # seconds between two pictures sent to the page
CURVE_POINTS = 1000  # the most steps of the loss history a status carries
THUMBNAIL = 160  # a batch's finished jobs, this many pixels across


class _Published:
    """What the page may read: a JSON-able status, the latest PNG and its number, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status: dict[str, Any] = {"state": "starting"}
        self.png: bytes | None = None
        self.version = 0
        self.thumbnails: dict[int, bytes] = {}  # a batch's finished jobs, by index

    def update(self, **changes: Any) -> None:
        with self.lock:
            self.status = {**self.status, **changes}

    def picture(self, png: bytes) -> None:
        with self.lock:
            self.png, self.version = png, self.version + 1
            self.status = {**self.status, "image": self.version}

    def thumbnail(self, index: int, png: bytes) -> None:
        with self.lock:
            self.thumbnails[index] = png

    def read(self) -> tuple[dict[str, Any], bytes | None]:
        with self.lock:
            return self.status, self.png


class _Encoder(threading.Thread):
    """Turns host copies of the picture into PNGs, off the training thread; keeps only the newest waiting."""

    def __init__(self, published: _Published) -> None:
        super().__init__(name="stylefw-preview-encoder", daemon=True)
        self.published = published
        self.ready = threading.Condition()
        self.waiting: tuple[torch.Tensor, Any] | None = None
        self.closed = False

    def submit(self, picture: torch.Tensor) -> None:
        """Start copying ``picture`` to the host; the device is not waited for here."""
        if picture.device.type == "cuda":
            host = torch.empty(picture.shape, dtype=picture.dtype, pin_memory=True)
            host.copy_(picture.detach(), non_blocking=True)
            done = torch.cuda.Event()
            done.record()
        else:
            host, done = picture.detach().to("cpu", copy=True), None
        with self.ready:
            self.waiting = host, done
            self.ready.notify()

    def close(self) -> None:
        with self.ready:
            self.closed = True
            self.ready.notify()

    def run(self) -> None:
        while True:
            with self.ready:
                while self.waiting is None and not self.closed:
                    self.ready.wait()
                if self.waiting is None:
                    return
                (host, done), self.waiting = self.waiting, None
            if done is not None:
                done.synchronize()  # this thread waits for the copy; the training thread goes on
            buffer = io.BytesIO()
            to_pil(host).save(buffer, format="PNG")
            self.published.picture(buffer.getvalue())


class Preview(Watcher):
    """Publishes a run's progress, losses and picture for the page, and honours its Stop and Save buttons (Save
    writes a snapshot beside the run's output). Of runs that share a batch, it follows the first lane.
    """

    def __init__(self, published: _Published | None = None) -> None:
        self.published = published or _Published()
        self.encoder = _Encoder(self.published)
        self.encoder.start()
        self.pending: list[tuple[StepEvent, torch.Tensor]] = []
        # each step's total and weighted terms, by the run's step count, for the page's curve
        self.history: dict[str, Any] = {"labels": [], "done": [], "stage": [], "total": [], "terms": []}
        self.read_at = self.image_at = 0.0
        self.stop_asked = self.save_asked = False
        self.work: Work | None = None
        self.output: Path | None = None
        self.device = "cpu"

    # the page's buttons, called from the server's threads: the next step acts on them

    def ask_stop(self) -> None:
        self.stop_asked = True

    def ask_save(self) -> None:
        self.save_asked = True

    # the run's events, on the training thread

    # a batch's jobs (stylefw batch --preview), called by the batch between runs

    def batch(self, names: list[str]) -> None:
        """The page shows these jobs as a grid, each with its status and, once done, a thumbnail."""
        self.published.update(batch={"state": "running", "current": None,
                                     "jobs": [{"name": name, "status": "waiting"} for name in names]})

    def job_started(self, index: int) -> None:
        self._job(index, "running", current=index)

    def job_ended(self, index: int, status: str, output: Path | None) -> None:
        """Mark job ``index`` as ``status``, with a thumbnail of ``output`` if it was written."""
        if output is not None and output.is_file():
            with Image.open(output) as image:
                thumbnail = image.convert("RGB")
            thumbnail.thumbnail((THUMBNAIL, THUMBNAIL))
            buffer = io.BytesIO()
            thumbnail.save(buffer, format="PNG")
            self.published.thumbnail(index, buffer.getvalue())
        self._job(index, status)

    def batch_ended(self) -> None:
        with self.published.lock:
            batch = self.published.status["batch"]
            self.published.status = {**self.published.status, "batch": {**batch, "state": "done", "current": None}}

    def _job(self, index: int, status: str, **changes: Any) -> None:
        with self.published.lock:
            batch = self.published.status["batch"]
            jobs = [dict(job) for job in batch["jobs"]]
            jobs[index]["status"] = status
            self.published.status = {**self.published.status, "batch": {**batch, **changes, "jobs": jobs}}

    def close(self) -> None:
        """Stop the encoder thread (the server may still show what was published)."""
        self.encoder.close()

    def run_start(self, event: RunStart) -> None:
        self.pending = []
        self.history = {"labels": [], "done": [], "stage": [], "total": [], "terms": []}
        self.work, self.device = Work(event.stages), event.device
        self.output = event.run.output
        stages = [{"index": stage.index, "size": stage.size, "shape": list(stage.shape), "steps": stage.steps}
                  for stage in event.stages]
        self.published.update(state="running", recipe=event.recipe.data, device=event.device, stages=stages,
                              total_steps=event.total_steps, output=str(self.output) if self.output else None,
                              final=None, stopped=None, losses=None, step=0, done=0)

    def stage_start(self, event: StageStart) -> None:
        self.flush()
        self.published.update(stage=event.stage.index, size=event.stage.size, shape=list(event.stage.shape))

    def step(self, event: StepEvent) -> None:
        self.pending.append((event, event.values))
        now = time.monotonic()
        if now - self.read_at >= 1 / READS_PER_SECOND or event.step == event.stage.steps:
            self.read_at = now
            self.flush()
        if now - self.image_at >= IMAGE_EVERY or event.step == event.stage.steps:
            self.image_at = now
            self.encoder.submit(event.image())
        if self.save_asked and self.output is not None:
            self.save_asked = False
            stage = event.stage.index if event.stage.count > 1 else None
            path = event.save(snapshot_path(self.output, event.step, stage))
            self.published.update(saved=str(path))
        if self.stop_asked:
            event.stop(STOPPED)

    def run_end(self, event: RunEnd) -> None:
        self.flush()
        result = event.result
        buffer = io.BytesIO()
        result.image.save(buffer, format="PNG")
        self.published.picture(buffer.getvalue())
        stopped = result.stopped.as_dict() if result.stopped is not None else None
        self.published.update(state="done", final=result.final_losses, stopped=stopped,
                              output=str(result.output) if result.output else None)

    def flush(self) -> None:
        """Read every kept step's losses from the device in one go, and publish them with the progress."""
        if not self.pending:
            return
        events = [event for event, _ in self.pending]
        rows = torch.stack([values.detach().float().cpu() for _, values in self.pending]).tolist()
        self.pending = []
        history = self.history
        history["labels"] = list(events[-1].labels)
        for event, (total, *terms) in zip(events, rows):
            history["done"].append(event.done)
            history["stage"].append(event.stage.index)
            history["total"].append(total)
            history["terms"].append([weight * value for weight, value in zip(event.weights, terms)])
        last = events[-1]
        rate = last.done / last.elapsed if last.elapsed > 0 else 0.0
        self.published.update(step=last.step, stage_steps=last.stage.steps, done=last.done, rate=rate,
                              eta=format_duration(self.work.remaining(last)), losses=_copy(history),
                              memory=_peak_memory(self.device))


def _copy(history: dict[str, Any]) -> dict[str, Any]:
    """The history for the page, thinned to at most ``CURVE_POINTS`` steps (the last always kept), so that a
    long run's status stays small to encode and to send."""
    count = len(history["done"])
    keep = list(range(0, count, max(1, math.ceil(count / CURVE_POINTS))))
    if count and keep[-1] != count - 1:
        keep.append(count - 1)
    return {"labels": list(history["labels"]),
            **{key: [history[key][index] for index in keep] for key in ("done", "stage", "total", "terms")}}


def _peak_memory(device: str) -> dict[str, Any]:
    """The device's peak memory so far: allocated on a GPU, the process's resident set size on the CPU."""
    if device.startswith("cuda"):
        return {"kind": "max_memory_allocated", "bytes": torch.cuda.max_memory_allocated(torch.device(device))}
    return {"kind": "peak resident set size", "bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
