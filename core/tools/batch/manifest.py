"""The manifest of a batch: what became of each job, written so that no two processes write one file.

Each process (one, or each rank under torchrun) appends what happens to its jobs to its own log,
``manifest.rank-R.jsonl``, a whole line at a time. At the end the first rank merges the logs into
``manifest.jsonl``, one line per job with its latest status. Outputs and their sidecars are written whole
or not at all (``save_result``), so a process killed in the middle of a job leaves the previous files, or
none, and its checkpoint if it wrote one. A rerun skips the jobs whose latest status is ``done`` and whose
output and sidecar are there.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ...engine.files import write_atomic
from .jobs import Job

__all__ = ["Record", "RankLog", "read_records", "latest", "is_done", "merge_manifest", "MANIFEST", "DONE",
           "FAILED_JOB", "INTERRUPTED_JOB", "RUNNING"]

MANIFEST = "manifest.jsonl"
DONE, FAILED_JOB, INTERRUPTED_JOB, RUNNING = "done", "failed", "interrupted", "running"


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
