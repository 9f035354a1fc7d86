"""``twistd p2p --help`` in groups, and bad options as one line."""

import pytest

from p2poverlay import tap
from p2poverlay.taphelp import GROUPS, listedOptions
from processes import DEADLINE, runTwistd


def test_every_option_is_listed_once_in_a_group():
    options = tap.Options()
    every = {opt.rstrip("=") for opt in options.longOpt}
    listed = listedOptions()
    assert len(listed) == len(set(listed))
    assert set(listed) == every


def test_help_starts_with_what_everyone_needs():
    text = str(tap.Options())
    titles = [title for title, _ in GROUPS]
    positions = [text.index(f"\n{title}:\n") for title in titles]
    assert positions == sorted(positions)
    assert text.index("--port=PORT") < text.index("--join=HOST:PORT") \
        < text.index("--min-peers=N") < text.index("--ping-interval")
    assert text.startswith("Usage: twistd [twistd options] p2p [options]")
    assert "-n runs the node in the" in text and "--logfile=FILE" in text


def test_defaults_read_as_values_with_units():
    text = str(tap.Options())
    assert "(default: 60 s)" in text  # --ban-time
    assert "(default: 65,536 bytes)" in text  # --max-line-length
    assert "(default: 9000)" in text
    assert "[default:" not in text and "(default: )" not in text
    assert all(len(line) <= 79 for line in text.splitlines())


@pytest.mark.parametrize("args, line", [
    (["--min-peers", "0"], "twistd p2p: --min-peers: must be at least 1, got 0"),
    (["--min-peers", "9", "--max-peers", "8"],
     "twistd p2p: --min-peers (9) is more than --max-peers (8)"),
    (["--ping-interval", "soon"],
     "twistd p2p: --ping-interval: must be a number, got 'soon'"),
    (["--bogus"], "twistd p2p: option --bogus not recognized"),
])
def test_a_bad_option_is_one_line_and_a_hint(tmp_path, args, line):
    result = runTwistd(["-n", "p2p"] + args, cwd=tmp_path,
                       timeout=DEADLINE + 5)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [line, "see 'twistd p2p --help'"]


def test_help_exits_zero_with_the_groups(tmp_path):
    result = runTwistd(["p2p", "--help"], cwd=tmp_path, timeout=DEADLINE + 5)
    assert result.returncode == 0, result.stderr
    assert "Start here:" in result.stdout and "Limits:" in result.stdout
