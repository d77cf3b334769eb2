"""The CLI's errors, its own and typer's usage errors: one line on stderr, never wrapped inside
a word or a path however long the path and however narrow the terminal (a person copies paths
out of them), and never read as rich markup."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ecgscreen.cli import app

LONG = "a-folder-whose-name-is-longer-than-a-terminal-line-" * 3  # 153 characters


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["screen", "{missing}", "--out", "{tmp}/r.csv"],
         "error: {missing} does not exist (give a folder, a list file or a labels.csv)\n"),
        (["pacs", "status", "--state", "{missing}"],
         "error: {missing} does not exist: the router has not run with this state yet\n"),
        (["predict", "{missing}"],  # a usage error, found by typer
         "Error: Invalid value for 'file': file '{missing}' does not exist.\n"),
    ],
    ids=["screen", "pacs-status", "typer-usage"],
)  # fmt: skip
def test_an_error_keeps_a_long_path_whole_on_one_line(tmp_path, command, message):
    missing = tmp_path / LONG / "[bold]nowhere"  # brackets: a path is not markup
    fill = {"missing": str(missing), "tmp": str(tmp_path)}
    result = CliRunner(env={"COLUMNS": "40"}).invoke(app, [arg.format(**fill) for arg in command])
    assert result.exit_code == 2
    assert message.format(**fill) in result.stderr
