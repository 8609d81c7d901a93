"""With --workers, a worker answers ready only while every worker of its group is ready."""

from __future__ import annotations

from pathlib import Path

from kubevino_runtime.workers import WorkerGroup, exit_status


def test_a_worker_is_ready_only_while_the_whole_group_is(tmp_path: Path) -> None:
    group = WorkerGroup(tmp_path, size=2, index=0)
    group.report_ready(True)
    assert not group.all_ready()  # the other worker has not said so yet
    (tmp_path / "ready-999999").touch()  # what the other worker writes
    assert group.all_ready()
    group.report_ready(False)
    assert not group.all_ready()
    group.report_ready(False)  # saying it twice is harmless


def test_the_group_exits_like_a_shell_reports_its_failing_worker() -> None:
    assert exit_status(-9) == 137
    assert exit_status(1) == 1
    assert exit_status(0) == 1  # a worker that ends on its own while serving is a failure
