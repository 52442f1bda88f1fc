"""Background manners from Python: rate limits, the bandwidth schedule, network cost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import openbits
from openbits import CostState, HResult, JobState, TransferPolicy


def test_limits_and_schedule_round_trip_and_persist(state_dir: Path) -> None:
    schedule = openbits.BandwidthSchedule(
        work=openbits.ScheduleWindow(0b0111110, 8 * 60, 17 * 60, (0, openbits.BANDWIDTH_BLOCKED, 0)),
        other_limits=(0, 1_000_000, 0),
        maintenance=openbits.ScheduleWindow(1, 23 * 60, 60, (5, 6, 7)),
    )
    with openbits.Manager(state_dir, max_connections_per_host=2) as m:
        assert m.max_bandwidth == 0 and m.bandwidth_schedule is None
        m.max_bandwidth = 4_000_000
        m.bandwidth_schedule = schedule
        job = m.create_job("limited")
        assert (job.max_bandwidth, job.transfer_policy) == (0, TransferPolicy.ALWAYS)
        job.max_bandwidth = 123_456
        job.transfer_policy = TransferPolicy.NOT_ROAMING
        with pytest.raises(openbits.InvalidArgument):
            job.transfer_policy = 0
        with pytest.raises(openbits.InvalidArgument):
            m.bandwidth_schedule = openbits.BandwidthSchedule(
                openbits.ScheduleWindow(1, 0, 1440, (0, 0, 0)), (0, 0, 0)
            )
        jid = job.id
    with openbits.Manager(state_dir) as m:
        assert m.max_bandwidth == 4_000_000
        assert m.bandwidth_schedule == schedule
        job = m.get_job(jid)
        assert (job.max_bandwidth, job.transfer_policy) == (123_456, TransferPolicy.NOT_ROAMING)
        m.bandwidth_schedule = None
        assert m.bandwidth_schedule is None


def test_a_job_waits_for_a_cost_its_policy_allows(server, manager, dest: Path) -> None:
    assert manager.network_cost == CostState.UNRESTRICTED
    with pytest.raises(openbits.InvalidArgument):
        manager.network_cost = CostState.UNRESTRICTED | CostState.ROAMING
    manager.network_cost = CostState.ROAMING
    job = manager.create_job("not roaming")
    job.transfer_policy = TransferPolicy.NOT_ROAMING
    job.add_file(server.url("/a.bin"), dest / "a.bin")
    job.resume()
    deadline = time.monotonic() + 20
    while job.state != JobState.TRANSIENT_ERROR and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.error is not None
    assert job.error.code == HResult.E_BLOCKED_BY_COST_TRANSFER_POLICY
    manager.network_cost = CostState.UNRESTRICTED
    assert job.wait(timeout=60) == JobState.TRANSFERRED
    assert job.complete() == HResult.S_OK
    assert (dest / "a.bin").read_bytes() == server.files["/a.bin"]
