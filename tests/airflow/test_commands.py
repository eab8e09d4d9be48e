"""The helper that finds the documented ``airflow`` commands (no Airflow needed)."""

from __future__ import annotations

from tests.airflow.commands import airflow_commands, unique

MARKDOWN = """
Intro with `make demo` and `airflow dags unpause my_dag`.

A backfill over a range:

```bash
$ airflow backfill create --dag-id my_dag \\
    --from-date … --to-date …   # the range
make test
airflow pools set onefile_api 1 "Rate limit # not a comment"
```

``double backticks airflow version`` are not inline commands here.
"""


def test_commands_come_from_inline_code_and_fenced_blocks_in_order():
    found = airflow_commands(MARKDOWN, "doc")
    assert [c.text for c in found] == [
        "airflow dags unpause my_dag",
        "airflow backfill create --dag-id my_dag --from-date … --to-date …",
        'airflow pools set onefile_api 1 "Rate limit # not a comment"',
    ]
    assert found[0].context.startswith("Intro with")
    assert "A backfill over a range" in found[1].context  # the paragraph before the block


def test_command_parts_and_placeholders():
    unpause, backfill, pools = airflow_commands(MARKDOWN, "doc")
    assert unpause.subcommand == ("dags", "unpause")
    assert pools.argv[-1] == "Rate limit # not a comment"
    assert backfill.has_placeholders and not unpause.has_placeholders
    filled = backfill.with_values("2026-03-10", "2026-03-12")
    assert filled.endswith("--from-date 2026-03-10 --to-date 2026-03-12")
    assert backfill.option("--dag-id") == "my_dag"
    assert unique([unpause, unpause, pools]) == [unpause, pools]


def test_a_name_in_angle_brackets_is_a_placeholder():
    (command,) = airflow_commands("Run `airflow dags test my_dag <logical date>` for a day.", "x")
    assert command.subcommand == ("dags", "test")
    assert command.placeholders == ["<logical date>"]
    assert command.with_values("2026-04-04") == "airflow dags test my_dag 2026-04-04"
