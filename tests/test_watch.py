"""Round lines read from a run directory while it is written: one line per round, as it lands,
none twice; rounds of an earlier call marked, and not shown when the run is refused."""

import json
import math
import time

import pytest

from fmlib.records import write_csv
from fmlib.watch import RoundWatcher, round_line, watch_rounds


def row(r: int, accuracy: float = 0.5, select: float = 2.0) -> dict:
    return {
        "round": r,
        "n_labeled": 10 + 5 * r,
        "accuracy": accuracy,
        "balanced_accuracy": accuracy - 0.1,
        "train_time": 1.25,
        "select_time": select,
    }


def write_rounds(path, rows, total: int = 3) -> None:
    """What run_experiment writes after each round: config.json once, rounds.csv atomically."""
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "config.json").exists():
        (path / "config.json").write_text(
            json.dumps({"config": {}, "schedule": [10 + 5 * r for r in range(total)]})
        )
    write_csv(path / "rounds.csv", rows)


def wait_for(condition, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def test_round_line_shows_progress_labels_accuracy_and_times():
    assert (
        round_line(row(1, 0.7123), 4)
        == "[2/4] round 1: 15 labels, accuracy 0.712 (balanced 0.612), train 1.2 s, select 2.0 s"
    )
    # as read from rounds.csv; the last round selects nothing
    last = {k: str(v) for k, v in row(3, select=math.nan).items()}
    assert round_line(last, None, earlier=True) == (
        "[4/?] round 3: 25 labels, accuracy 0.500 (balanced 0.400), train 1.2 s (recorded earlier)"
    )


def test_poll_writes_each_new_round_once_in_order(tmp_path):
    lines = []
    watcher = RoundWatcher(tmp_path / "run", lines.append)
    assert watcher.poll() == 0  # no directory yet
    write_rounds(tmp_path / "run", [row(0)])
    assert watcher.poll() == 1 and watcher.poll() == 0
    write_rounds(tmp_path / "run", [row(0), row(1), row(2)])
    assert watcher.poll() == 2
    write_rounds(tmp_path / "run", [row(0), row(1), row(2)])  # rewritten, nothing new
    assert watcher.poll() == 0
    assert [line.split(":")[0] for line in lines] == [
        "[1/3] round 0",
        "[2/3] round 1",
        "[3/3] round 2",
    ]


def test_lines_arrive_while_the_run_is_still_going(tmp_path):
    lines = []
    with watch_rounds(tmp_path, lines.append, interval=0.01):
        write_rounds(tmp_path, [row(0)])
        assert wait_for(lambda: len(lines) == 1), "the round line must come before the block ends"
        write_rounds(tmp_path, [row(0), row(1)])
        assert wait_for(lambda: len(lines) == 2)
    assert len(lines) == 2


def test_rounds_recorded_just_before_the_end_get_their_line(tmp_path):
    lines = []
    with watch_rounds(tmp_path, lines.append, interval=3600):
        write_rounds(tmp_path, [row(0), row(1), row(2)])
    assert [line[:5] for line in lines] == ["[1/3]", "[2/3]", "[3/3]"]


def test_earlier_rounds_come_first_marked_and_not_when_the_run_is_refused(tmp_path):
    write_rounds(tmp_path, [row(0), row(1)])
    lines = []
    with watch_rounds(tmp_path, lines.append, interval=0.01):  # resumed: two rounds done before
        assert lines == []  # kept until the run proves to be this one
        write_rounds(tmp_path, [row(0), row(1), row(2)])
        assert wait_for(lambda: len(lines) == 3)
    assert [line.endswith("(recorded earlier)") for line in lines] == [True, True, False]

    lines.clear()
    with watch_rounds(tmp_path, lines.append):  # finished before: every round, marked
        pass
    assert len(lines) == 3 and all(line.endswith("(recorded earlier)") for line in lines)

    lines.clear()
    with pytest.raises(ValueError, match="different config"):
        with watch_rounds(tmp_path, lines.append):
            raise ValueError("holds a run with a different config")
    assert lines == []
