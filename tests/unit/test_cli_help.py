"""Every subcommand prints its help and exits 0."""

from __future__ import annotations

import pytest

from isobench.cli import main

COMMANDS = ("run", "report", "merge", "runtimes", "doctor", "schema", "ab", "compare", "clean")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_exits_zero(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: isobench {command}" in capsys.readouterr().out
