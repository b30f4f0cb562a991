"""``stylefw batch``: a grid of runs (contents × styles × values of recipe keys), each job once, resumable.

A job is one run of the recipe with one content, one style and one value of each ``--grid`` key. Its
**id** is a hash of its resolved recipe, with each input named by the sha256 of its bytes rather than by
its path, and without the keys that never change a pixel (where the output goes, the device, how often
files are written, how memory is spent). The same work therefore has the same id on any machine and
whatever order the command's arguments came in.

Each process (one, or each rank under torchrun) appends what happens to its jobs to its own log,
``manifest.rank-R.jsonl``, a line at a time, so two processes never write the same file. At the end the
first rank merges the logs into ``manifest.jsonl``, one line per job with its latest status. Outputs and
their sidecars are written whole or not at all (``save_result``), so a process killed in the middle of a
job leaves the previous files, or none, and its checkpoint if it wrote one. A rerun skips the jobs whose
latest status is ``done`` and whose output and sidecar are there, continues an interrupted job from its
checkpoint, and runs the rest.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import itertools
import json
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .checkpoint import changed_inputs, changed_keys, checkpoint_path, read_checkpoint
from .contracts import FAILED
from .errors import RecipeError, StylefwError, UserError
from .image import fetch, write_atomic
from .recipe import IMAGE_SUFFIXES, Recipe, is_url, load_recipe

__all__ = ["Job", "Grid", "Record", "Outcome", "expand_inputs", "parse_grid", "plan_jobs", "job_id", "read_records",
           "latest", "is_done", "RankLog", "merge_manifest", "saved_run", "run_job", "shard", "MANIFEST", "DONE",
           "FAILED_JOB", "INTERRUPTED_JOB", "RUNNING", "SKIPPED"]

MANIFEST = "manifest.jsonl"
DONE, FAILED_JOB, INTERRUPTED_JOB, RUNNING, SKIPPED = "done", "failed", "interrupted", "running", "skipped"
# keys that say where and how often files are written, which device runs the job, or how a step spends
# memory: none changes a pixel (beyond float rounding across devices), so none is part of a job's id
VOLATILE = ("output", "device", "save_every", "checkpoint_every", "memory", "tile")
# characters a file name keeps as they are; anything else becomes "_", and brackets vanish (losses1.weight)
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


@dataclass(frozen=True)
class Grid:
    """``--grid KEY=V1,V2,...``: a recipe key and the values, as written, that the jobs sweep it over."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Job:
    """One run of the batch: its place in the job list, its id, its file name and what it is made of."""

    index: int
    id: str
    name: str
    grid: tuple[tuple[str, str], ...]
    recipe: Recipe
    overrides: tuple[str, ...] = ()

    @property
    def content(self) -> str:
        return self.recipe.content.source

    @property
    def style(self) -> str:
        """The style's name, or the blend's (``a+b``)."""
        return _style_label(self.recipe)

    @property
    def output(self) -> Path:
        return self.recipe.output

    @property
    def sidecar(self) -> Path:
        return Path(f"{self.recipe.output}.json")

    def describe(self) -> dict[str, Any]:
        """What the manifest says of the job besides its outcome."""
        return {"id": self.id, "index": self.index, "name": self.name, "output": str(self.output),
                "content": self.content, "style": [ref.source for ref in self.recipe.styles],
                "grid": dict(self.grid), "overrides": list(self.overrides)}


@dataclass(frozen=True)
class Record:
    """One line of a log: a job's status at a moment, with what the run said when it ended."""

    data: Mapping[str, Any]

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def status(self) -> str:
        return self.data["status"]


def expand_inputs(patterns: Sequence[str], key: str) -> list[str]:
    """Each pattern's image files: a file or URL as given, a folder's images, a glob's matches; sorted, no repeats.

    ``key`` (``--content``, ``--style``) names the option in the error for a pattern that finds nothing.
    """
    found: dict[str, None] = {}
    for pattern in patterns:
        if is_url(pattern):
            found[pattern] = None
            continue
        path = Path(pattern).expanduser()
        if path.is_dir():
            matches = [str(child) for child in sorted(path.iterdir())
                       if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES]
        elif glob.has_magic(pattern):
            matches = [match for match in sorted(glob.glob(str(path), recursive=True))
                       if Path(match).is_file() and Path(match).suffix.lower() in IMAGE_SUFFIXES]
        else:
            matches = [str(path)] if path.is_file() else []
        if not matches:
            what = "folder has no .png, .jpg, .jpeg or .webp images" if path.is_dir() else (
                "pattern matches no image" if glob.has_magic(pattern) else "file does not exist")
            raise UserError(f"{key} {pattern}: the {what}", hint="give image files, folders of images or globs "
                                                                  "such as 'photos/*.jpg' (quoted)")
        found.update(dict.fromkeys(matches))
    return sorted(found)


def parse_grid(texts: Sequence[str]) -> list[Grid]:
    """``--grid`` values, sorted by key so that the flags' order does not matter; values keep their order.

    Values are split at commas outside brackets, so ``--grid 'scales=[128,256],[256,512]'`` has two.
    """
    grids: dict[str, Grid] = {}
    for text in texts:
        key, equals, values = text.partition("=")
        key = key.strip()
        if not equals or not key or not values.strip():
            raise UserError(f"--grid {text}: expected KEY=VALUE1,VALUE2,...",
                            hint="for example --grid losses[1].weight=1e3,1e4,1e5")
        if key in grids:
            raise UserError(f"--grid {key} is given twice", hint="list all of its values in one --grid")
        grids[key] = Grid(key, tuple(_split_values(values)))
    return [grids[key] for key in sorted(grids)]


def _split_values(text: str) -> list[str]:
    values, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    values.append(current.strip())
    if "" in values:
        raise UserError(f"--grid value list '{text}' has an empty value", hint="remove the extra comma")
    return values


def plan_jobs(recipe_path: str | Path, overrides: Sequence[Any], contents: Sequence[str], styles: Sequence[str],
              grids: Sequence[Grid], out: Path, suffix: str = ".png") -> list[Job]:
    """Every job of the batch, in a fixed order (content, then style, then each grid key's values), each with
    its resolved recipe, its id and a file name in ``out`` that no other job has."""
    resolved = []
    for content, style in itertools.product(contents or [None], styles or [None]):
        for values in itertools.product(*(grid.values for grid in grids)):
            grid = tuple((spec.key, value) for spec, value in zip(grids, values))
            inputs = ([("content", content)] if content else []) + ([("style", style)] if style else [])
            resolved.append((_job_recipe(recipe_path, [*overrides, *inputs], grid), grid))
    digests: dict[str, str] = {}  # each input is read once, however many jobs use it
    ids = [job_id(recipe, digests) for recipe, _ in resolved]
    if len(set(ids)) < len(ids):
        repeated = next(i for i in ids if ids.count(i) > 1)
        raise UserError(f"two jobs of the batch are the same work (id {repeated[:12]}): the same content, style "
                        "and recipe", hint="remove the repeated input or --grid value")
    names = [_name(recipe, grid) for recipe, grid in resolved]
    # a name shared by two jobs (photos with one name in two folders) gets each job's id to tell them apart
    names = [f"{name}-{ident[:8]}" if names.count(name) > 1 else name for name, ident in zip(names, ids)]
    given = tuple(str(item) if isinstance(item, str) else f"{item[0]}={item[1]}" for item in overrides)
    return [Job(index, ident, name, grid, dataclasses.replace(recipe, output=(out / f"{name}{suffix}").resolve()),
                given + tuple(f"{key}={value}" for key, value in grid))
            for index, ((recipe, grid), ident, name) in enumerate(zip(resolved, ids, names))]


def _job_recipe(recipe_path: str | Path, overrides: list[Any], grid: tuple[tuple[str, str], ...]) -> Recipe:
    """The recipe with ``overrides`` and the job's grid values; a problem with a grid value names ``--grid``."""
    try:
        return load_recipe(recipe_path, [*overrides, *(f"{key}={value}" for key, value in grid)])
    except RecipeError as exc:
        keys = {f"--set {key}": f"--grid {key}" for key, _ in grid}
        values = ", ".join(f"{key}={value}" for key, value in grid)
        problems = [replace(problem, path=keys.get(problem.path, problem.path)) for problem in exc.problems]
        raise RecipeError(problems, source=exc.source,
                          hint=f"{exc.hint} (the job with --grid values {values})" if grid else exc.hint) from None


def job_id(recipe: Recipe, digests: dict[str, str] | None = None) -> str:
    """The sha256 (hex, 16 characters) of ``recipe`` with its inputs named by their bytes' sha256, without
    the ``VOLATILE`` keys. ``digests`` caches each input's digest, by its source."""
    digests = {} if digests is None else digests
    for ref in (recipe.content, *recipe.styles):
        if ref.source not in digests:
            digests[ref.source] = _digest(ref.source)
    data = {key: value for key, value in recipe.data.items() if key not in VOLATILE}
    data["content"] = {**data["content"], "image": digests[recipe.content.source]}
    data["style"] = [{**style, "image": digests[ref.source]} for style, ref in zip(data["style"], recipe.styles)]
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _digest(source: str) -> str:
    path = fetch(source) if is_url(source) else source
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise UserError(f"cannot read {source}: {exc.strerror or exc}") from exc


def _stem(source: str) -> str:
    return Path(source.split("?")[0]).stem


def _style_label(recipe: Recipe) -> str:
    return "+".join(_stem(ref.source) for ref in recipe.styles)


def _name(recipe: Recipe, grid: Sequence[tuple[str, str]]) -> str:
    """``photo--starry_night--losses1.weight=1e4``: readable, and safe as a file name on any system."""
    parts = [_stem(recipe.content.source), _style_label(recipe)] + [f"{key}={value}" for key, value in grid]
    return "--".join(_UNSAFE.sub("_", part.replace("[", "").replace("]", "")).strip("_") or "_" for part in parts)


def read_records(out: Path) -> list[Record]:
    """Every record in ``out``'s merged manifest and in the ranks' logs.

    A line cut short by a killed process is skipped.
    """
    return _read(out / MANIFEST) + [record for log in _logs(out) for record in _read(log)]


def _logs(out: Path) -> list[Path]:
    return sorted(out.glob("manifest.rank-*.jsonl"))


def _read(path: Path) -> list[Record]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and "id" in data and "status" in data:
            records.append(Record(data))
    return records


def latest(records: Iterable[Record]) -> dict[str, Record]:
    """Each job's latest record, by the time it was written."""
    found: dict[str, Record] = {}
    for record in sorted(records, key=lambda record: record.data.get("time", 0.0)):
        found[record.id] = record
    return found


def is_done(job: Job, records: Mapping[str, Record]) -> bool:
    """Whether ``job`` finished in an earlier run and its output and sidecar are still there."""
    record = records.get(job.id)
    return record is not None and record.status == DONE and job.output.is_file() and job.sidecar.is_file()


class RankLog:
    """One process's log, ``manifest.rank-R.jsonl``: whole lines, appended and flushed to disk one at a time."""

    def __init__(self, out: Path, rank: int) -> None:
        self.path = out / f"manifest.rank-{rank}.jsonl"
        self.rank = rank

    def write(self, job: Job, status: str, **details: Any) -> Record:
        record = Record({**job.describe(), "status": status, "rank": self.rank, "pid": os.getpid(),
                         "time": time.time(), **details})
        line = json.dumps(dict(record.data), ensure_ascii=False) + "\n"
        # one write of one line to a file only this process appends to, then fsync: a kill leaves whole lines
        # before it and at most one cut line, which read_records skips
        with open(self.path, "a", encoding="utf-8") as log:
            log.write(line)
            log.flush()
            os.fsync(log.fileno())
        return record


def merge_manifest(out: Path, jobs: Sequence[Job]) -> list[Record]:
    """Write ``manifest.jsonl``: the latest record of each job of this batch in job order, then those of jobs
    that earlier batches into the folder ran, each with its count of ``attempts``; then remove the ranks'
    logs, which it now holds. Call it when no process is running a job: a job whose latest record is still
    ``running`` is then one whose process was killed during it, and is recorded as interrupted."""
    merged, logged = _read(out / MANIFEST), [record for log in _logs(out) for record in _read(log)]
    attempts = {record.id: int(record.data.get("attempts", 0)) for record in merged}
    for record in logged:
        if record.status == RUNNING:
            attempts[record.id] = attempts.get(record.id, 0) + 1
    found = latest(merged + logged)
    for ident, record in found.items():
        data = {**record.data, "attempts": attempts.get(ident, 0)}
        if record.status == RUNNING:
            data.update(status=INTERRUPTED_JOB, error="its process ended during the job")
        found[ident] = Record(data)
    ours = {job.id for job in jobs}
    ordered = [found[job.id] for job in jobs if job.id in found]
    ordered += [record for ident, record in found.items() if ident not in ours]
    text = "".join(json.dumps(dict(record.data), ensure_ascii=False) + "\n" for record in ordered)
    write_atomic(out / MANIFEST, lambda handle: handle.write(text.encode("utf-8")))
    for log in _logs(out):
        log.unlink(missing_ok=True)
    return ordered


def saved_run(job: Job) -> Path | None:
    """The checkpoint an interrupted attempt at ``job`` left, if it is of this very job and can be continued."""
    path = checkpoint_path(job.output)
    if not path.is_file():
        return None
    try:
        saved = read_checkpoint(path)
    except UserError:  # damaged, or from another version: the job starts again and overwrites it
        return None
    if [key for key in changed_keys(saved["recipe"], job.recipe.data) if key != "device"]:
        return None
    return None if changed_inputs(saved["inputs"], job.recipe) else path


@dataclass
class Outcome:
    """How one job ended: its status, the run's result (None when it raised) and the error's message."""

    status: str
    seconds: float
    result: Any = None
    error: str | None = None
    resumed: bool = False
    details: dict[str, Any] = field(default_factory=dict)


def run_job(job: Job, log: RankLog, *, on_event: Callable[[Any], None] | None = None,
            classify: Callable[[BaseException], StylefwError], debug: bool = False) -> Outcome:
    """Run ``job`` (or continue it from its checkpoint), log its start and its end, and say how it ended.

    A job that fails, whatever the reason (an unreadable image, a plugin's bug, a loss that stopped being
    finite) is logged with the error and does not raise: the batch goes on with the others.
    """
    from .api import resume, run

    ckpt = saved_run(job)
    log.write(job, RUNNING, resumed=ckpt is not None)
    start = time.perf_counter()
    try:
        if ckpt is not None:
            device = {"device": job.recipe.device}
            result = resume(ckpt, device, force=bool(changed_keys(read_checkpoint(ckpt)["recipe"], job.recipe.data)),
                            on_event=on_event, debug=debug)
        else:
            result = run(job.recipe, on_event=on_event, debug=debug)
    except Exception as exc:  # one job's failure is recorded, and the others go on
        error = exc if isinstance(exc, StylefwError) else classify(exc)
        outcome = Outcome(FAILED_JOB, time.perf_counter() - start, error=str(error), resumed=ckpt is not None)
        log.write(job, FAILED_JOB, seconds=outcome.seconds, error=outcome.error, resumed=outcome.resumed)
        return outcome
    return _ended(job, log, result, time.perf_counter() - start, resumed=ckpt is not None)


def _ended(job: Job, log: RankLog, result: Any, seconds: float, *, resumed: bool = False, **details: Any) -> Outcome:
    """Log how ``job``'s run ended, from its result: done, interrupted, or failed on a non-finite loss."""
    stop = result.stopped
    if result.interrupted:
        status, error = INTERRUPTED_JOB, f"interrupted by {stop.details.get('signal', 'SIGINT')}"
    elif stop is not None and stop.reason == FAILED:
        status, error = FAILED_JOB, stop.details["message"]
    elif stop is not None:  # a stop asked for (the preview's button, a plugin): the job is not done
        status, error = INTERRUPTED_JOB, f"stopped: {stop.reason}"
    else:
        status, error = DONE, None
    log.write(job, status, seconds=seconds, steps=len(result.trace), final_losses=result.metadata()["final_losses"],
              resumed=resumed, **details, **({"error": error} if error else {}))
    return Outcome(status, seconds, result, error, resumed=resumed)


def lane_groups(jobs: Sequence[Job], size: int) -> list[list[Job]]:
    """``jobs`` in groups of at most ``size`` that can run as lanes of one batch (``stylefw.lanes``), in job
    order: same recipe but for the images, contents of one size, no checkpoint to continue from. A job that
    fits no group is a group of its own."""
    from PIL import Image

    from .lanes import OWN, compatible

    def key(job: Job) -> Any:
        if size < 2 or saved_run(job) is not None or compatible([job.recipe]) is not None:
            return job.id  # alone
        try:
            with Image.open(fetch(job.content) if is_url(job.content) else job.content) as image:
                shape = image.size
        except OSError:
            return job.id  # the run will say what is wrong with it
        shared = {name: value for name, value in job.recipe.data.items() if name not in OWN}
        return json.dumps(shared, sort_keys=True, default=str), shape

    groups: dict[Any, list[list[Job]]] = {}
    for job in jobs:
        chunks = groups.setdefault(key(job), [[]])
        if len(chunks[-1]) == size:
            chunks.append([])
        chunks[-1].append(job)
    return sorted((chunk for chunks in groups.values() for chunk in chunks), key=lambda chunk: chunk[0].index)


def run_lanes(jobs: Sequence[Job], log: RankLog, *, on_event: Callable[[Any], None] | None = None,
              classify: Callable[[BaseException], StylefwError], debug: bool = False) -> list[Outcome]:
    """Run ``jobs`` (a group from ``lane_groups``) as lanes of one batch, each logged as its own job; the
    first job's events go to ``on_event``. If the batch cannot start (an input that cannot be read), each
    job runs alone instead, so that the one at fault is recorded with its error."""
    from .api import run_together

    if len(jobs) == 1:
        return [run_job(jobs[0], log, on_event=on_event, classify=classify, debug=debug)]
    together = [job.id for job in jobs]
    for job in jobs:
        log.write(job, RUNNING, resumed=False, together=together)
    start = time.perf_counter()
    try:
        results = run_together([job.recipe for job in jobs], on_events=[on_event], debug=debug)
    except Exception:  # before any step: find the job at fault by running each alone
        return [run_job(job, log, on_event=on_event, classify=classify, debug=debug) for job in jobs]
    seconds = time.perf_counter() - start
    return [_ended(job, log, result, seconds, together=together) for job, result in zip(jobs, results)]


def shard(jobs: Sequence[Job], rank: int, world: int) -> list[Job]:
    """Round-robin: rank r takes jobs r, r + world, r + 2·world, ... of the list."""
    return list(jobs[rank::world])
