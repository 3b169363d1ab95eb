"""The study store: one SQLite database per study directory (WAL, one transaction per record).

It holds the config, the runs with their status, and the observations. Only the driver writes it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pandas as pd

from scalinglab.errors import UserError
from scalinglab.observations import COLUMNS
from scalinglab.study.config import SEARCH_KEYS, StudyConfig, parse_config
from scalinglab.study.records import RunResult, RunSpec, parse_hparams

DB_NAME = "study.sqlite"
OBS_COLUMNS = tuple(COLUMNS)  # the observations table's columns, in order, from the one schema
# The observation columns carry no SQL type (no affinity), so values come back exactly as the run wrote them.
DDL = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, model_scale REAL, data_scale REAL, seed INTEGER,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    error TEXT, attempts INTEGER NOT NULL DEFAULT 0, resumed_from_step INTEGER,
    n_params INTEGER, n_params_nonembed INTEGER, dataset_size INTEGER, flops_per_step REAL,
    started REAL, finished REAL, parent TEXT, shared_steps INTEGER, hparams TEXT, pruned_at INTEGER
);
CREATE TABLE IF NOT EXISTS observations (
    {", ".join(OBS_COLUMNS)},
    UNIQUE (run_id, steps, metric, split)
);
"""


def run_id_for(model_scale: float, data_scale: float, seed: int, hparams: tuple[tuple[str, float], ...] = ()) -> str:
    """m4-d2-s0, and a trial's hyperparameters after it: m4-d2-s0-lr0.002-bs64."""
    trial = "".join(f"-{SEARCH_KEYS[k]}{v:g}" for k, v in hparams)
    return f"m{model_scale:g}-d{data_scale:g}-s{seed}{trial}"


def plan_runs(config: StudyConfig) -> list[RunSpec]:
    """Every cell of the grid: model scales x data scales x seeds (x a search's trials)."""
    trials = config.search.trials() if config.search is not None else [()]
    return [
        RunSpec(run_id_for(m, d, s, t), m, d, s, t)
        for m in config.model_scales
        for d in config.data_scales
        for s in config.seeds
        for t in trials
    ]


class Store:
    """The database of one study directory."""

    def __init__(self, directory: str | Path, create: bool = False) -> None:
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            if create:
                self.conn.executescript(DDL)
            tables = {row[0] for row in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.OperationalError as exc:  # locked, unreadable, no space: the file may be a fine study
            self.conn.close()
            raise UserError(f"{self.path}: cannot be opened ({exc})") from None
        except sqlite3.DatabaseError as exc:  # "file is not a database": garbage bytes or another format
            self.conn.close()
            raise UserError(f"{self.path}: not a study database ({exc})") from None
        if not {"meta", "runs", "observations"} <= tables:
            self.conn.close()
            raise UserError(f"{self.path}: not a study database (it has no study tables)")
        self._add_branch_columns()

    def _add_branch_columns(self) -> None:
        """A store made before cooldown branches or searches gets their columns (empty); read-only, left as is."""
        have = {row[1] for row in self.conn.execute("PRAGMA table_info(runs)")}
        added = (("parent", "TEXT"), ("shared_steps", "INTEGER"), ("hparams", "TEXT"), ("pruned_at", "INTEGER"))
        for column, kind in added:
            if column not in have:
                try:
                    self.conn.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
                except sqlite3.OperationalError:
                    return

    @classmethod
    def create(cls, directory: str | Path, config: StudyConfig) -> Store:
        """Open or create the store for `config`; refuse a directory that holds a different study."""
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{directory}: cannot create the study directory ({exc.strerror or exc})") from None
        store = cls(directory, create=True)
        held = store.meta("config_digest")
        if held is not None and held != config.digest():
            store.close()
            raise UserError(
                f"{directory}: holds a different study (config digest {held}, this config {config.digest()}); "
                "choose another directory or `scalinglab study resume` it"
            )
        if held is None:
            with store.transaction():
                store.conn.execute(
                    "INSERT INTO meta VALUES ('config', ?)", (json.dumps(config.model_dump(mode="json")),)
                )
                store.conn.execute("INSERT INTO meta VALUES ('config_digest', ?)", (config.digest(),))
                store.conn.execute("INSERT INTO meta VALUES ('created', ?)", (str(time.time()),))
                store.conn.executemany(
                    "INSERT INTO runs (run_id, model_scale, data_scale, seed, hparams, status) "
                    "VALUES (?, ?, ?, ?, ?, 'pending')",
                    [(r.run_id, r.model_scale, r.data_scale, r.seed, _hparams_text(r)) for r in plan_runs(config)],
                )
        return store

    @classmethod
    def open(cls, directory: str | Path) -> Store:
        directory = Path(directory)
        if not (directory / DB_NAME).is_file():
            raise UserError(f"{directory}: not a study directory (no {DB_NAME})")
        store = cls(directory)
        if store.meta("config") is None:
            store.close()
            raise UserError(f"{store.path}: not a study database (it holds no config)")
        return store

    def close(self) -> None:
        self.conn.close()

    def transaction(self):
        return _Transaction(self.conn)

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def config(self, check_task: bool = False) -> StudyConfig:
        """The study's config; its task options were checked when the study was created (`check_task` again)."""
        return parse_config(json.loads(self.meta("config")), str(self.path), check_task=check_task)

    def runs(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM runs ORDER BY rowid", self.conn)

    def runs_to_do(self, retry_failed: bool = False) -> list[RunSpec]:
        states = ("pending", "running", "failed") if retry_failed else ("pending", "running")
        marks = ", ".join("?" * len(states))
        rows = self.conn.execute(
            f"SELECT run_id, model_scale, data_scale, seed, hparams FROM runs WHERE status IN ({marks}) ORDER BY rowid",
            states,
        ).fetchall()
        return [RunSpec(*row) for row in rows]

    def mark_running(self, run_id: str) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE runs SET status = 'running', attempts = attempts + 1, started = ?, error = NULL "
                "WHERE run_id = ?",
                (time.time(), run_id),
            )

    def mark_not_running(self, run_id: str) -> None:
        """Undo `mark_running` for a run this driver did not get to train after all."""
        with self.transaction():
            self.conn.execute(
                "UPDATE runs SET status = 'pending', attempts = MAX(attempts - 1, 0) "
                "WHERE run_id = ? AND status = 'running'",
                (run_id,),
            )

    def mark_failed(self, run_id: str, error: str) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished = ? WHERE run_id = ?",
                (error, time.time(), run_id),
            )

    def record_done(self, result: RunResult) -> None:
        """The run's observations and its 'done' status, in one transaction: all or nothing."""
        with self.transaction():
            status = self.conn.execute("SELECT status FROM runs WHERE run_id = ?", (result.run_id,)).fetchone()
            if status is not None and status[0] == "done":
                return  # a retried task that finished twice is recorded once
            self.conn.execute("DELETE FROM observations WHERE run_id = ?", (result.run_id,))
            self.conn.executemany(
                f"INSERT INTO observations ({', '.join(OBS_COLUMNS)}) VALUES ({', '.join('?' * len(OBS_COLUMNS))})",
                [tuple(row[c] for c in OBS_COLUMNS) for row in result.rows],
            )
            self.conn.execute(
                "UPDATE runs SET status = 'done', error = NULL, finished = ?, resumed_from_step = ?, n_params = ?, "
                "n_params_nonembed = ?, dataset_size = ?, flops_per_step = ?, parent = ?, shared_steps = ?, "
                "pruned_at = ? WHERE run_id = ?",
                (
                    time.time(),
                    result.resumed_from_step,
                    result.n_params,
                    result.n_params_nonembed,
                    result.dataset_size,
                    result.flops_per_step,
                    result.parent,
                    result.shared_steps,
                    result.pruned_at,
                    result.run_id,
                ),
            )

    def observations(self, pruned: bool = False) -> pd.DataFrame:
        """Every observation of the runs that reached their budget; a search's trials add a column per searched
        hyperparameter (lr, batch_size, ...). With `pruned`, also the rows of the trials a halving search stopped
        early, and a column `pruned_at` (the step it stopped them at; empty for complete runs)."""
        obs = pd.read_sql_query(
            f"SELECT {', '.join(OBS_COLUMNS)} FROM observations ORDER BY run_id, steps, split, metric", self.conn
        )
        stopped = dict(self.conn.execute("SELECT run_id, pruned_at FROM runs WHERE pruned_at IS NOT NULL").fetchall())
        if pruned:
            obs["pruned_at"] = obs["run_id"].map(stopped).astype("Int64")
        else:
            obs = obs[~obs["run_id"].isin(list(stopped))].reset_index(drop=True)
        rows = self.conn.execute("SELECT run_id, hparams FROM runs WHERE hparams IS NOT NULL").fetchall()
        trials = {run_id: dict(parse_hparams(text)) for run_id, text in rows}
        for key in SEARCH_KEYS:
            if any(key in values for values in trials.values()):
                obs[key] = obs["run_id"].map({r: v.get(key) for r, v in trials.items()}).astype(float)
        return obs


def _hparams_text(spec: RunSpec) -> str | None:
    """A trial's hyperparameters as the runs table stores them (JSON pairs), None outside a search."""
    return json.dumps([list(pair) for pair in spec.hparams]) if spec.hparams else None


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind, value, tb) -> None:
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
