"""A run's policy against the previous run of its family (``ledger/previous_run.py``).

Both policies are rebuilt from the ledger (``build_report_from_ledger`` + ``build_policy``, each
run with its own stored prices and cutoffs), not read from published outputs, which may have
moved. The flow ``ttscale-batch`` adds ``PolicyChanges.markdown()`` to its report artifact;
``ttscale policy RUN_ID --previous`` / ``--against RUN_ID`` prints the diff as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ttscale.errors import ConfigError
from ttscale.ledger import Ledger
from ttscale.ledger.lake import retry_lake
from ttscale.ledger.previous_run import PreviousRun, previous_run
from ttscale.ledger.report_data import build_report_from_ledger
from ttscale.reports.policy import build_policy
from ttscale.reports.policy_diff import PolicyDiff, diff_policies, policy_diff_markdown

if TYPE_CHECKING:
    import duckdb

    from ttscale.reports.model import Report


@dataclass(frozen=True)
class PolicyChanges:
    """The diff of a run's policy against its previous run's; both None for a first run."""

    run_id: str
    previous: PreviousRun | None
    diff: PolicyDiff | None

    def markdown(self) -> str:
        """The artifact's "Policy changes since RUN (date)" section."""
        since = f"{self.previous.created_at:%Y-%m-%d %H:%M} UTC" if self.previous else None
        return policy_diff_markdown(self.diff, since)

    def as_json(self) -> dict[str, Any]:
        if self.diff is None:
            return {"run_id": self.run_id, "previous_run_id": None, "changed": False}
        assert self.previous is not None
        return self.diff.as_json() | {"previous_created_at": self.previous.created_at.isoformat()}


def _policy(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any]:
    return build_policy(build_report_from_ledger(con, run_id))


def policy_changes(ledger_path: str, run_id: str, current: Report | None = None) -> PolicyChanges:
    """``run_id``'s policy against its family's previous completed run (``previous_run``).

    ``current`` is the run's report if the caller has it (the flow, just after publishing);
    otherwise it is rebuilt from the ledger. ``ConfigError`` if ``run_id`` is unknown.
    """
    with Ledger(ledger_path, read_only=True) as led:
        previous = retry_lake(previous_run)(led.con, run_id)  # a busy SQLite catalog clears
        if previous is None:
            return PolicyChanges(run_id, None, None)
        before = _policy(led.con, previous.run_id)
        after = build_policy(current) if current is not None else _policy(led.con, run_id)
    return PolicyChanges(run_id, previous, diff_policies(before, after))


def policy_diff_between(ledger_path: str, run_id: str, against: str) -> PolicyDiff:
    """``run_id``'s policy against ``against``'s, both from the ledger (unknown run: exit 2)."""
    if run_id == against:
        raise ConfigError(f"run {run_id!r} compared with itself")
    with Ledger(ledger_path, read_only=True) as led:
        return diff_policies(_policy(led.con, against), _policy(led.con, run_id))
