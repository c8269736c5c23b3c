"""The rounds of an evaluation: submitting tagged jobs, recording them before anything waits on
them, fetching their counts and storing every finished round (the files are ``records``').

Stored rounds are replayed and recorded jobs fetched (never resubmitted; only local mode, whose jobs
die with their process, submits a lost job again, seeded as before); the next replay round is
submitted only when no job is recorded for it.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable

from tqdm.auto import tqdm

from ..backends.ibm import LostJobError
from ..backends.noisy import Executor, RemoteExecutor
from ..errors import QRNNError
from .config import EvalConfig
from .protocols import HardwareProtocol
from .records import EvalStore, _as_jsonable


def _submit(
    executor: RemoteExecutor,
    isa_pubs: list,
    config: EvalConfig,
    store: EvalStore,
    r: int,
    seed: int,
    replaces: str | None = None,
) -> dict:
    """Record round ``r``'s job: one the server already holds under its tags (its id never reached
    disk), else a new submission, tagged with the run, the evaluation attempt and the round. The
    record is fsync'ed in jobs.jsonl before anything waits on the job; a record that cannot be
    written names the job id, so no job is ever lost silently."""
    tags = job_tags(store, r)
    job_id = executor.find_job(tags) if replaces is None else None
    recovered = job_id is not None
    if not recovered:
        job_id = executor.submit(isa_pubs, config.shots, tags=tags, seed=seed)
    record = {
        "eval": store.name,
        "attempt": store.attempt,
        "round": r,
        "job_id": job_id,
        "recovered_by_tag": recovered,
        "tags": tags,
        "target": config.target,
        "protocol": config.protocol,
        "channel": executor.channel,
        "mode": executor.mode_kind,
        "batch": executor.batch_id,  # Session or Batch id
        "sampler_options": executor.sampler_options,
        "shots": config.shots,
        "pubs": len(isa_pubs),
        "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if replaces:
        record["replaces"] = replaces
    try:
        store.record_job(record)
    except QRNNError as error:
        raise QRNNError(
            f"job {job_id} (round {r + 1}) was submitted but could not be recorded ({error}); "
            f"after fixing that, add this line to {store.jobs_path} and run 'qrnn collect': "
            + json.dumps(record, sort_keys=True)
        ) from None
    return record


def _run_rounds(
    protocol: HardwareProtocol,
    isa: list,
    executor: Executor,
    store: EvalStore,
    config: EvalConfig,
    *,
    submit_only: bool,
    progress: bool,
    log: Callable[[str], None],
) -> bool:
    """Advance the rounds; returns True when all rounds have results (False: stopped after
    submitting)."""
    jobs = store.jobs()
    bar = tqdm(
        total=protocol.n_rounds,
        disable=not progress,
        desc=f"{protocol.name} on {executor.description}",
        dynamic_ncols=True,
        file=sys.stderr,
    )
    try:
        if isinstance(executor, RemoteExecutor) and not protocol.dependent_rounds:
            # independent rounds (jobs of one Batch): every job is submitted and recorded before
            # any is awaited
            submitted = False
            for r in range(protocol.n_rounds):
                if r in jobs or store.load_round(r) is not None:
                    continue
                isa_pubs = [(isa[i], values) for i, values in protocol.round_pubs(r)]
                record = _submit(executor, isa_pubs, config, store, r, config.seed * 100_003 + r)
                jobs[r] = record
                submitted = True
                how = "found by tag" if record.get("recovered_by_tag") else "submitted"
                log(f"{how} round {r + 1}/{protocol.n_rounds}: job {record['job_id']}")
            if submit_only and submitted:
                return False
        for r in range(protocol.n_rounds):
            pubs = protocol.round_pubs(r)
            counts = store.load_round(r)
            if counts is None:
                isa_pubs = [(isa[i], values) for i, values in pubs]
                if isinstance(executor, RemoteExecutor):
                    seed = config.seed * 100_003 + r
                    record = jobs.get(r)
                    if record is None:
                        record = _submit(executor, isa_pubs, config, store, r, seed)
                        jobs[r] = record
                        how = "found by tag" if record.get("recovered_by_tag") else "submitted"
                        log(f"{how} round {r + 1}/{protocol.n_rounds}: job {record['job_id']}")
                        if submit_only:
                            return False
                    try:
                        counts = executor.fetch(record["job_id"])
                    except LostJobError as lost:  # local mode only: nothing was paid for
                        record = _submit(
                            executor, isa_pubs, config, store, r, seed, replaces=record["job_id"]
                        )
                        jobs[r] = record
                        log(f"{lost}; resubmitted round {r + 1} as job {record['job_id']}")
                        counts = executor.fetch(record["job_id"])
                else:
                    counts = executor.run(isa_pubs, config.shots, seed=config.seed * 100_003 + r)
                counts = _as_jsonable(counts)
                store.save_round(r, counts)
            protocol.absorb(r, counts)
            bar.update(1)
    finally:
        bar.close()
    return True


def job_tags(store: EvalStore, r: int) -> list[str]:
    """Tags of round r's job: the run (its folder name), the evaluation attempt and the round —
    stable across processes, so 'qrnn collect' can find a job whose id never reached disk."""
    run = re.sub(r"[^A-Za-z0-9_.-]", "_", store.run_dir.resolve().name)
    return [f"qrnn-run:{run}", f"qrnn-eval:{store.name}:{store.attempt}", f"qrnn-round:{r}"]
