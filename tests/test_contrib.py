"""contrib/p2poverlay.service: the command it runs starts a node as promised."""

import shlex
import signal
import subprocess
import time
from pathlib import Path

from processes import DEADLINE, TWISTD, childEnvironment

UNIT = Path(__file__).resolve().parent.parent / "contrib" / "p2poverlay.service"


def unitSettings():
    """The unit's settings, continuation lines joined."""
    text = UNIT.read_text().replace("\\\n", " ")
    settings = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings[key] = value
    return settings


def test_the_unit_runs_a_foreground_node_logging_to_standard_output(tmp_path):
    settings = unitSettings()
    assert settings["Type"] == "simple" and settings["Restart"] == "on-failure"
    args = shlex.split(settings["ExecStart"])
    assert args[0] == "/opt/p2poverlay/bin/twistd" and "-n" in args
    dataDir = tmp_path / "state"
    args = [TWISTD if a == args[0] else
            str(dataDir) if a == settings["WorkingDirectory"] else a
            for a in args]
    # Loopback and a free port here; nobody to join.
    port = args.index("--port")
    args[port + 1] = "tcp:0:interface=127.0.0.1"
    join = args.index("--join")
    del args[join:join + 2]
    proc = subprocess.Popen(args, cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=childEnvironment())
    try:
        lines = []
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "listening on" in line and "node " in line:
                break
        assert any("listening on" in line for line in lines), lines
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    # The journal gets the log; nothing is left in the working directory
    # but the data directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]
    assert (dataDir / "node.key").exists()
