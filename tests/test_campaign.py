"""A logged campaign (xsim/crosscheck/campaign.py): chunks appended as they finish, the
seeds a log holds for the same code skipped, an interrupted campaign going on."""
from __future__ import annotations

import json

import pytest

from xsim.cli import main
from xsim.crosscheck import campaign, diff
from xsim.errors import XsimError

TIERS = ("interp", "jit")


@pytest.fixture
def checked(monkeypatch):
    """diff.run_cases replaced by a stand-in that records the seeds it was given and
    reports a difference on every seed divisible by 7."""
    seen: list[int] = []

    def fake(seeds, tiers, budget):
        seeds = list(seeds)
        seen.extend(seeds)
        return [diff.CaseResult(s, "ok", "r0 differs" if s % 7 == 0 else None) for s in seeds]

    monkeypatch.setattr(diff, "run_cases", fake)
    return seen


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_chunks_are_logged_and_the_next_run_skips_them(tmp_path, checked):
    log = tmp_path / "c.jsonl"
    first = campaign.run(range(1, 11), TIERS, log=log, chunk=4)
    assert checked == list(range(1, 11)) and first.differing == [7]
    assert [tuple(r["seeds"]) for r in _lines(log)] == [(1, 5), (5, 9), (9, 11)]
    assert all(r["isas"] == ["jit"] and r["code"] == campaign.identity() for r in _lines(log))
    checked.clear()
    again = campaign.run(range(1, 21), TIERS, log=log, chunk=4)
    assert checked == list(range(11, 21))
    assert (again.from_log, again.checked, again.differing) == (10, 10, [7, 14])


def test_other_code_isas_or_budget_check_again(tmp_path, checked, monkeypatch):
    log = tmp_path / "c.jsonl"
    campaign.run(range(0, 6), TIERS, log=log)
    for change in (dict(tiers=("interp", "riscv64")), dict(budget=99)):
        checked.clear()
        campaign.run(range(0, 6), change.get("tiers", TIERS), change.get("budget", 10_000),
                     log=log)
        assert checked == list(range(6))
    checked.clear()
    monkeypatch.setattr(campaign, "identity", lambda: "another lifter")
    assert campaign.run(range(0, 6), TIERS, log=log).from_log == 0
    assert checked == list(range(6))


def test_spans_leave_out_what_is_covered():
    spans = list(campaign._spans(range(0, 20), [(3, 5), (4, 8), (15, 30)], 3))
    assert [(r.start, r.stop) for r in spans] == [(0, 3), (8, 11), (11, 14), (14, 15)]


def test_a_line_cut_short_at_the_end_is_left_out(tmp_path, checked):
    log = tmp_path / "c.jsonl"
    campaign.run(range(0, 4), TIERS, log=log, chunk=2)
    log.write_text(log.read_text() + '{"seeds": [4, 6], "isas": ["ji')
    checked.clear()
    assert campaign.run(range(0, 6), TIERS, log=log, chunk=2).from_log == 4
    assert checked == [4, 5]


def test_a_bad_line_inside_the_log_names_its_place(tmp_path):
    log = tmp_path / "c.jsonl"
    log.write_text('{"seeds": [0, 2]}\n{"seeds": [2, 4]}\n')
    with pytest.raises(XsimError, match=r"c\.jsonl:1: not a campaign log line"):
        campaign.read_log(log)


def test_an_interrupted_campaign_keeps_what_it_finished(tmp_path, monkeypatch, capsys):
    log = tmp_path / "c.jsonl"
    real = diff.run_cases

    def stop_at_the_second_chunk(seeds, tiers, budget):
        seeds = list(seeds)
        if seeds[0] >= 3:
            raise KeyboardInterrupt
        return real(seeds, tiers, budget)

    monkeypatch.setattr(diff, "run_cases", stop_at_the_second_chunk)
    code = main(["crosscheck", "--gen", "9", "--seed", "0", "--isa", "x86_64", "--log",
                 str(log), "--chunk", "3", "--jobs", "1"])
    out = capsys.readouterr()
    assert code == 130
    assert "stopped with 6 programs left" in out.out and f"--log {log}" in out.out
    assert "seeds 0-2: 0 with differences" in out.err
    assert [tuple(r["seeds"]) for r in _lines(log)] == [(0, 3)]
    monkeypatch.setattr(diff, "run_cases", real)
    checked_again = campaign.run(range(0, 9), ("interp", "x86_64"), log=log, chunk=3)
    assert (checked_again.from_log, checked_again.checked) == (3, 6)


def test_the_command_reports_the_logs_share_and_its_differences(tmp_path, checked, capsys,
                                                                monkeypatch):
    log = tmp_path / "c.jsonl"
    campaign.run(range(0, 5), ("interp", "x86_64"), log=log)
    monkeypatch.setattr(diff, "shrink_difference", lambda code, *a, **k: (code, None))
    monkeypatch.setattr(diff, "differences", lambda *a, **k: None)
    code = main(["crosscheck", "--gen", "10", "--seed", "0", "--isa", "x86_64", "--log",
                 str(log), "--jobs", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "== seed 0 " in out and "== seed 7 " in out
    assert f"10 programs on x86_64 (5 of them from {log}): 2 with differences" in out


def test_log_without_gen_is_refused(tmp_path, capsys):
    assert main(["crosscheck", "--log", str(tmp_path / "c.jsonl")]) == 2
    assert "--log goes with --gen" in capsys.readouterr().err


def test_an_unwritable_log_stops_before_anything_runs(tmp_path, checked):
    with pytest.raises(XsimError, match="cannot read the campaign log"):
        campaign.run(range(0, 4), TIERS, log=tmp_path)      # a directory
    with pytest.raises(XsimError, match="no/c.jsonl: cannot write the campaign log"):
        campaign.run(range(0, 4), TIERS, log=tmp_path / "no" / "c.jsonl")
    assert checked == []


def test_overlapping_lines_count_a_difference_once(tmp_path, checked):
    log = tmp_path / "c.jsonl"
    campaign.run(range(0, 10), TIERS, log=log)
    campaign.run(range(5, 10), TIERS, log=tmp_path / "other.jsonl")
    log.write_text(log.read_text() + (tmp_path / "other.jsonl").read_text())
    assert campaign.run(range(0, 10), TIERS, log=log).differing == [0, 7]
