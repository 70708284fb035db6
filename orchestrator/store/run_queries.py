"""Runs and their names: creating, finishing, reopening, listing, resolving and tagging runs.

A run id is written `latest`, a unique prefix or `tag:NAME` wherever a user names a run;
`resolve_run_id` is the one place that reads them.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.errors import BadInputError
from orchestrator.store.database import Database
from orchestrator.store.schema import RUN_STATUSES, results, run_tags, runs
from orchestrator.store.timestamps import now_iso, since_iso

# Names a user may give a run with `farm runs tag`: they appear after `tag:` on command lines.
_TAG_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")


class CellKey(NamedTuple):
    """What identifies a result within a run: its board × model × variant, measured with the
    settings whose hash this is. As `done_cells` returns it."""

    board: str
    model: str
    variant: str
    settings_hash: str


def new_run_id() -> str:
    """Sortable, readable and unique across controllers: r20261125-120700-1a2b3c."""
    return dt.datetime.now(dt.timezone.utc).strftime("r%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def tags_of(conn: Connection, run_ids: Sequence[str]) -> dict[str, list[str]]:
    """run id → its tag names (sorted), for these runs (those without tags left out)."""
    found: dict[str, list[str]] = {}
    for start in range(0, len(run_ids), 500):
        query = sa.select(run_tags.c.run_id, run_tags.c.name).where(
            run_tags.c.run_id.in_(run_ids[start:start + 500])).order_by(run_tags.c.name)
        for rid, name in conn.execute(query):
            found.setdefault(rid, []).append(name)
    return found


class RunsMixin(Database):
    """`Store`'s runs and tags."""

    # --- runs -----------------------------------------------------------------------------

    def create_run(self, settings: Mapping[str, Any], controller: Mapping[str, Any], farm_version: str,
                   status: str = "running") -> str:
        """A new run (`queued` when submitted to the fleet, else `running`); returns its id."""
        if status not in ("running", "queued"):
            raise ValueError(f"create_run: status must be running or queued, got {status!r}")
        run_id = new_run_id()
        with self._begin() as conn:
            conn.execute(
                runs.insert().values(
                    run_id=run_id,
                    created_at=now_iso(),
                    status=status,
                    farm_version=farm_version,
                    settings_json=json.dumps(settings, sort_keys=True, default=str),
                    controller_json=json.dumps(controller, sort_keys=True, default=str),
                )
            )
        return run_id

    def finish_run(self, run_id: str, status: str) -> None:
        """Record how a run ended: `finished`, `failed` (every job failed), `interrupted` or `cancelled`."""
        if status not in RUN_STATUSES or status in ("running", "queued"):
            raise ValueError(f"finish_run: status must be finished, failed, interrupted or cancelled, got {status!r}")
        with self._begin() as conn:
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(status=status, finished_at=now_iso()))

    def reopen_run(self, run_id: str, controller: Mapping[str, Any] | None = None) -> str:
        """Set a stored run back to `running` to add its missing cells (`farm bench --resume`).

        `run_id` may be `latest`, a prefix or `tag:NAME`; returns the full id. The run keeps its
        id, settings and every stored result; `resumed_at` records when it was reopened.
        `controller`: the resuming controller's record, which replaces the one that stopped (so a
        run reopened by a live controller is not taken for its dead first controller's).
        """
        run_id = self.resolve_run_id(run_id)
        values: dict[str, Any] = {"status": "running", "finished_at": None, "resumed_at": now_iso()}
        if controller is not None:
            values["controller_json"] = json.dumps(controller, sort_keys=True, default=str)
        with self._begin() as conn:
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(**values))
        return run_id

    # --- runs whose controller died (orchestrator.run_liveness) -----------------------------

    def running_runs(self) -> list[tuple[str, dict[str, Any]]]:
        """(run id, controller record) of every run stored as `running`."""
        with self._connect() as conn:
            rows = conn.execute(sa.select(runs.c.run_id, runs.c.controller_json).where(runs.c.status == "running"))
            return [(rid, json.loads(text or "{}")) for rid, text in rows]

    def mark_abandoned(self, run_id: str) -> bool:
        """`running` -> `abandoned` (its controller died mid-run; its stored results stay). Only a
        run still `running` changes, so a live controller's later finish_run is not overwritten by
        mistake and two callers do not both report it. Returns whether this call changed it."""
        with self._begin() as conn:
            changed = conn.execute(runs.update().where(runs.c.run_id == run_id, runs.c.status == "running")
                                   .values(status="abandoned", finished_at=now_iso())).rowcount
        return bool(changed)

    def done_cells(self, run_id: str) -> set[CellKey]:
        """The cells of a run that have an ok result: what `--resume` skips.

        Failed cells are not in the set, so a resumed run measures them again (`add_result`
        then replaces the failed row, keeping its error in `details["previous_attempts"]`).
        """
        query = sa.select(results.c.board, results.c.model, results.c.variant, results.c.settings_hash).where(
            results.c.run_id == run_id, results.c.status == "ok"
        )
        with self._connect() as conn:
            return {CellKey(*row) for row in conn.execute(query)}

    def list_runs(
        self,
        limit: int | None = 50,
        *,
        board: str | None = None,
        model: str | None = None,
        since: str | dt.date | None = None,
    ) -> list[dict[str, Any]]:
        """Runs newest first: run_id, created_at, finished_at, resumed_at, status, farm_version,
        results (count), failed (count), tags (names). See `get_run` for settings.

        `board` / `model` keep runs that measured that board / model (name); `since` keeps runs
        created at or after it (see `since_iso`).
        """
        query = (
            sa.select(runs.c.run_id, runs.c.created_at, runs.c.finished_at, runs.c.resumed_at, runs.c.status,
                      runs.c.farm_version)
            .order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
        )
        if board is not None or model is not None:
            having = sa.select(results.c.run_id)
            if board is not None:
                having = having.where(results.c.board == board)
            if model is not None:
                having = having.where(results.c.model == model)
            query = query.where(runs.c.run_id.in_(having))
        bound = since_iso(since)
        if bound is not None:
            query = query.where(runs.c.created_at >= bound)
        if limit is not None:
            query = query.limit(limit)
        with self._connect() as conn:
            found = [dict(row._mapping) for row in conn.execute(query)]
            run_ids = [run["run_id"] for run in found]
            # counted for the listed runs only (by the run_id index), not over the whole table
            counts: dict[str, tuple[int, int]] = {}
            for start in range(0, len(run_ids), 500):
                count_query = (
                    sa.select(results.c.run_id, sa.func.count(),
                              sa.func.sum(sa.case((results.c.status != "ok", 1), else_=0)))
                    .where(results.c.run_id.in_(run_ids[start:start + 500]))
                    .group_by(results.c.run_id)
                )
                for rid, total, failed in conn.execute(count_query):
                    counts[rid] = (int(total), int(failed or 0))
            tags = tags_of(conn, run_ids)
        for run in found:
            run["results"], run["failed"] = counts.get(run["run_id"], (0, 0))
            run["tags"] = tags.get(run["run_id"], [])
        return found

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run with `settings` and `controller` decoded and its `tags`."""
        run_id = self.resolve_run_id(run_id)
        with self._connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).one()
            tags = tags_of(conn, [run_id])
        run = dict(row._mapping)
        run["settings"] = json.loads(run.pop("settings_json"))
        run["controller"] = json.loads(run.pop("controller_json"))
        run["tags"] = tags.get(run_id, [])
        return run

    def resolve_run_id(self, run_id: str) -> str:
        """`latest` → the newest run; `tag:NAME` → the tagged run; a unique prefix → the full id.

        Anything else raises BadInputError.
        """
        with self._connect() as conn:
            if run_id == "latest":
                found = conn.execute(
                    sa.select(runs.c.run_id).order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(1)
                ).scalar()
                if found is None:
                    raise BadInputError(f"no runs stored yet in {self.safe_url}: run `farm bench` first")
                return found
            if run_id.startswith("tag:"):
                name = run_id[len("tag:"):]
                found = conn.execute(sa.select(run_tags.c.run_id).where(run_tags.c.name == name)).scalar()
                if found is None:
                    known = conn.execute(sa.select(run_tags.c.name).order_by(run_tags.c.name).limit(20)).scalars().all()
                    hint = f" (tags: {', '.join(known)})" if known else " (no run is tagged yet: `farm runs tag RUN_ID NAME`)"
                    raise BadInputError(f"no run is tagged {name!r} in {self.safe_url}{hint}")
                return found
            matches = conn.execute(
                sa.select(runs.c.run_id).where(runs.c.run_id.startswith(run_id, autoescape=True)).limit(2)
            ).scalars().all()
        if run_id in matches:
            return run_id
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise BadInputError(f"no run {run_id!r} in {self.safe_url} (see `farm runs ls`)")
        raise BadInputError(f"run id prefix {run_id!r} is ambiguous: {', '.join(matches)}, ...")

    def latest_run_sharing_cells(self, run_id: str, statuses: Sequence[str] = ("finished",)) -> str | None:
        """The newest run other than `run_id`, not newer than it, with a status in `statuses`,
        that has an ok result for at least one (board, model, variant) that `run_id` measured.

        The baseline that `--baseline latest` means; None when there is none (a first run).
        """
        mine = results.alias("mine")
        other = results.alias("other")
        shared = (
            sa.select(sa.literal(1))
            .select_from(other.join(mine, sa.and_(other.c.board == mine.c.board, other.c.model == mine.c.model,
                                                  other.c.variant == mine.c.variant)))
            .where(other.c.run_id == runs.c.run_id, other.c.status == "ok", mine.c.run_id == run_id)
        )
        with self._connect() as conn:
            created_at = conn.execute(sa.select(runs.c.created_at).where(runs.c.run_id == run_id)).scalar()
            if created_at is None:
                raise BadInputError(f"no run {run_id!r} in {self.safe_url} (see `farm runs ls`)")
            query = (
                sa.select(runs.c.run_id)
                .where(runs.c.run_id != run_id, runs.c.status.in_(list(statuses)),
                       runs.c.created_at <= created_at, shared.exists())
                .order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
                .limit(1)
            )
            return conn.execute(query).scalar()

    def latest_run_measuring(self, boards: Sequence[str], models: Sequence[str], variants: Sequence[str],
                             statuses: Sequence[str] = ("finished",), *, run_id: str | None = None,
                             exclude: str | None = None) -> str | None:
        """The newest run with a status in `statuses` that has an ok result for one of these
        boards × models × variants: what `--baseline latest` means before a run is stored (a
        gated run resolves its baseline first, to measure beside the baseline's files). `run_id`
        asks about that one run only (does a named baseline share a cell with the plan?);
        `exclude` leaves a run out (a resumed run is not its own baseline)."""
        measured = (
            sa.select(sa.literal(1))
            .where(results.c.run_id == runs.c.run_id, results.c.status == "ok", results.c.board.in_(list(boards)),
                   results.c.model.in_(list(models)), results.c.variant.in_(list(variants)))
        )
        query = sa.select(runs.c.run_id).where(measured.exists())
        if run_id is not None:
            query = query.where(runs.c.run_id == run_id)
        else:
            query = query.where(runs.c.status.in_(list(statuses)))
        if exclude is not None:
            query = query.where(runs.c.run_id != exclude)
        query = query.order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(1)
        with self._connect() as conn:
            return conn.execute(query).scalar()

    # --- tags -----------------------------------------------------------------------------

    def tag_run(self, run_id: str, name: str) -> str | None:
        """Name a run (`release-1.2`), usable as `tag:NAME` wherever a run id is.

        A name points at one run: reusing it moves it to the new run. Returns the run the
        name pointed at before (None if it is new, or already pointed here). A run may carry
        several names.
        """
        if not _TAG_NAME_RE.match(name or ""):
            raise BadInputError(
                f"bad tag name {name!r}: use letters, digits, '.', '_', '+', '-' (up to 100, "
                "starting with a letter or digit), e.g. release-1.2"
            )
        run_id = self.resolve_run_id(run_id)
        with self._begin() as conn:
            previous = conn.execute(sa.select(run_tags.c.run_id).where(run_tags.c.name == name)).scalar()
            conn.execute(run_tags.delete().where(run_tags.c.name == name))
            conn.execute(run_tags.insert().values(name=name, run_id=run_id, tagged_at=now_iso()))
        return previous if previous != run_id else None

    def untag(self, name: str) -> str:
        """Remove a tag; returns the run it named. BadInputError if there is no such tag."""
        with self._begin() as conn:
            previous = conn.execute(sa.select(run_tags.c.run_id).where(run_tags.c.name == name)).scalar()
            if previous is None:
                raise BadInputError(f"no run is tagged {name!r} in {self.safe_url}")
            conn.execute(run_tags.delete().where(run_tags.c.name == name))
        return previous

    def tags(self) -> dict[str, str]:
        """Every tag name → run id."""
        with self._connect() as conn:
            return dict(conn.execute(sa.select(run_tags.c.name, run_tags.c.run_id).order_by(run_tags.c.name)).all())
