"""The `tracker` command, run in-process against a throwaway database.

The commands call `asyncio.run` themselves, so these tests are plain functions and open no `db` fixture.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import msgspec
import pytest
from click.testing import CliRunner, Result
from tortoise.backends.base.executor import EXECUTOR_CACHE

import tracker
from tests.conftest import new_postgres_database
from tracker.cli import main
from tracker.domain.events import EVENT_PAYLOADS, EventType
from tracker.estimates.backtest import COST_HEADER, PREDICTION_HEADER

KEY = re.compile(r"trk_[0-9a-f]{12}_[A-Za-z0-9_-]{40,}")


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Each command runs as if in a new process: no compiled queries from another database."""
    EXECUTOR_CACHE.clear()
    yield
    EXECUTOR_CACHE.clear()


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "t.sqlite3"


@pytest.fixture
def env(sqlite_file: Path) -> dict[str, str]:
    return {
        "TRACKER_DATABASE_URL": f"sqlite://{sqlite_file}",
        "TRACKER_PUBLIC_BASE_URL": "https://status.example.test",
    }


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def ok(env: dict[str, str], *args: str) -> str:
    result = run(env, *args)
    assert result.exit_code == 0, result.output
    return result.output


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def tables(path: Path) -> set[str]:
    return {str(row[0]) for row in query(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migrate_creates_the_schema_in_a_new_sqlite_file(env: dict[str, str], sqlite_file: Path) -> None:
    assert not sqlite_file.parent.exists()

    output = ok(env, "migrate")

    assert "database is up to date" in output
    assert sqlite_file.exists()
    assert {"job", "workflow", "stage", "account", "contact", "api_key", "job_event"} <= tables(sqlite_file)
    assert query(sqlite_file, "SELECT count(*) FROM job") == [(0,)]


def test_migrate_twice_changes_nothing(env: dict[str, str], sqlite_file: Path) -> None:
    ok(env, "migrate")
    applied = query(sqlite_file, "SELECT * FROM tortoise_migrations ORDER BY 1")
    schema = query(sqlite_file, "SELECT name, sql FROM sqlite_master ORDER BY name")
    assert applied

    output = ok(env, "migrate")

    assert "database is up to date" in output
    assert query(sqlite_file, "SELECT * FROM tortoise_migrations ORDER BY 1") == applied
    assert query(sqlite_file, "SELECT name, sql FROM sqlite_master ORDER BY name") == schema


def test_keys_create_prints_the_secret_once_and_stores_only_a_hash(
    env: dict[str, str], sqlite_file: Path
) -> None:
    ok(env, "migrate")

    output = ok(env, "keys", "create", "--role", "staff", "--name", "x")

    secrets_shown = KEY.findall(output)
    assert len(secrets_shown) == 1, output
    [secret] = secrets_shown
    assert output.count(secret) == 1
    assert re.search(r"created key 1 \(staff, x\)", output), output
    [(name, role, prefix, secret_hash)] = query(
        sqlite_file, "SELECT name, role, prefix, secret_hash FROM api_key"
    )
    assert (name, role) == ("x", "staff")
    assert secret.startswith(f"trk_{prefix}_")
    assert secret_hash != secret
    assert secret not in str(secret_hash)


def test_keys_list_shows_keys_without_their_secrets(env: dict[str, str]) -> None:
    ok(env, "migrate")
    created = ok(env, "keys", "create", "--role", "staff", "--name", "x")
    [secret] = KEY.findall(created)
    prefix = secret.split("_")[1]
    ok(env, "keys", "create", "--role", "admin", "--name", "ops team")

    output = ok(env, "keys", "list")

    assert secret not in output
    assert not KEY.search(output)
    lines = output.splitlines()
    assert lines[0].split() == ["ID", "ROLE", "PREFIX", "STATE", "EXPIRES", "LAST", "USED", "NAME"]
    assert lines[1].split() == ["1", "staff", prefix, "active", "-", "-", "x"]
    assert lines[2].split()[:2] == ["2", "admin"]
    assert lines[2].split()[3:] == ["active", "-", "-", "ops", "team"]
    assert len(lines) == 3


def test_keys_revoke_marks_the_key_revoked(env: dict[str, str], sqlite_file: Path) -> None:
    ok(env, "migrate")
    ok(env, "keys", "create", "--role", "staff", "--name", "x")
    ok(env, "keys", "create", "--role", "integrator", "--name", "y")

    output = ok(env, "keys", "revoke", "1")

    assert "revoked key 1" in output
    listed = ok(env, "keys", "list").splitlines()
    assert listed[1].split()[3] == "revoked"
    assert listed[2].split()[3] == "active"
    [(revoked_at,)] = query(sqlite_file, "SELECT revoked_at FROM api_key WHERE id = 1")
    assert revoked_at is not None


def test_keys_create_takes_an_expiry_in_days_or_as_a_time(env: dict[str, str], sqlite_file: Path) -> None:
    ok(env, "migrate")

    in_days = ok(env, "keys", "create", "--role", "staff", "--name", "temp", "--expires", "90d")
    at_time = ok(
        env, "keys", "create", "--role", "staff", "--name", "x", "--expires", "2099-01-31T18:00+01:00"
    )

    assert re.search(r"created key 1 \(staff, temp, expires \d{4}-\d\d-\d\dT\d\d:\d\dZ\)", in_days), in_days
    assert "created key 2 (staff, x, expires 2099-01-31T17:00Z)" in at_time
    [(days,)] = query(
        sqlite_file, "SELECT julianday(expires_at) - julianday(created_at) FROM api_key WHERE id = 1"
    )
    assert abs(float(str(days)) - 90) < 0.001
    listed = ok(env, "keys", "list").splitlines()
    assert listed[2].split()[3:5] == ["active", "2099-01-31T17:00Z"]


@pytest.mark.parametrize(
    ("expires", "message"),
    [("soon", "--expires"), ("2027-01-01", "offset"), ("2020-01-01T00:00Z", "in the future")],
)
def test_keys_create_refuses_an_unusable_expiry(env: dict[str, str], expires: str, message: str) -> None:
    ok(env, "migrate")

    result = run(env, "keys", "create", "--role", "staff", "--name", "x", "--expires", expires)

    assert result.exit_code != 0
    assert message in result.output
    assert "created key" not in result.output


def test_the_last_active_admin_key_cannot_be_revoked(env: dict[str, str]) -> None:
    ok(env, "migrate")
    ok(env, "keys", "create", "--role", "admin", "--name", "owner")

    result = run(env, "keys", "revoke", "1")

    assert result.exit_code == 1, result.output
    assert "last active admin key" in result.output
    assert ok(env, "keys", "list").splitlines()[1].split()[3] == "active"
    ok(env, "keys", "create", "--role", "admin", "--name", "successor")
    assert "revoked key 1" in ok(env, "keys", "revoke", "1")


def test_revoking_an_unknown_key_fails_with_a_message(env: dict[str, str]) -> None:
    ok(env, "migrate")

    result = run(env, "keys", "revoke", "42")

    assert result.exit_code == 1, result.output
    assert "Error: API key 42 does not exist" in result.output


def test_a_key_with_an_unknown_role_is_refused(env: dict[str, str], sqlite_file: Path) -> None:
    ok(env, "migrate")

    result = run(env, "keys", "create", "--role", "bogus", "--name", "x")

    assert result.exit_code == 2, result.output
    assert "Invalid value for '--role'" in result.output
    assert not KEY.search(result.output)
    assert query(sqlite_file, "SELECT count(*) FROM api_key") == [(0,)]


def test_a_key_with_a_blank_name_is_refused(env: dict[str, str], sqlite_file: Path) -> None:
    ok(env, "migrate")

    result = run(env, "keys", "create", "--role", "staff", "--name", "   ")

    assert result.exit_code == 1, result.output
    assert "name: must be 1 to 89 characters" in result.output
    assert query(sqlite_file, "SELECT count(*) FROM api_key") == [(0,)]


def test_a_malformed_database_url_fails_with_a_message(env: dict[str, str]) -> None:
    result = run({**env, "TRACKER_DATABASE_URL": "mysql://localhost/tracker"}, "keys", "list")

    assert result.exit_code == 1, result.output
    assert "TRACKER_DATABASE_URL must start with sqlite:// or postgres://" in result.output


@pytest.mark.parametrize(
    "args",
    [("keys", "list"), ("keys", "create", "--role", "staff", "--name", "x"), ("demo", "--if-empty")],
)
def test_a_command_on_an_unmigrated_database_says_to_migrate(
    env: dict[str, str], args: tuple[str, ...]
) -> None:
    result = run(env, *args)

    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: the database refused the command: no such table"), result.output
    assert "tracker migrate" in result.output
    assert not KEY.search(result.output)


def test_an_unreachable_database_fails_with_a_message(env: dict[str, str]) -> None:
    unreachable = {**env, "TRACKER_DATABASE_URL": "postgres://nobody@127.0.0.1:1/tracker"}

    for args in (("migrate",), ("keys", "list")):
        result = run(unreachable, *args)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: cannot connect to the database"), result.output


@pytest.mark.parametrize("command", ["serve", "dispatch"])
def test_serving_an_unmigrated_database_fails_with_a_message_before_starting(
    env: dict[str, str], command: str
) -> None:
    result = run(env, command)

    assert result.exit_code == 1, result.output
    migrations = len(list((Path(tracker.__file__).parent / "db" / "migrations").glob("0*.py")))
    lacking = f"Error: the database lacks {migrations} migration(s) (0001_initial, "
    assert result.output.startswith(lacking), result.output
    assert result.output.rstrip().endswith("run `tracker migrate`")


def test_serving_an_unreachable_database_fails_with_a_message(env: dict[str, str]) -> None:
    unreachable = {**env, "TRACKER_DATABASE_URL": "postgres://nobody@127.0.0.1:1/tracker"}

    for command in ("serve", "dispatch"):
        result = run(unreachable, command)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: cannot connect to the database"), result.output


def test_serve_on_a_port_in_use_fails_with_a_message_before_starting(env: dict[str, str]) -> None:
    ok(env, "migrate")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run(env, "serve", "--host", "127.0.0.1", "--port", str(port))
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "--port or TRACKER_PORT" in result.output


def test_demo_if_empty_seeds_once_and_prints_a_fresh_staff_key(
    env: dict[str, str], sqlite_file: Path
) -> None:
    ok(env, "migrate")

    first = ok(env, "demo", "--if-empty")

    assert "demo seeded: 12 jobs (9 open, 1 on hold, 1 completed, 1 cancelled)" in first
    [first_key] = set(KEY.findall(first))
    assert "API docs: https://status.example.test/schema" in first
    assert "staff dashboard: https://status.example.test/dashboard" in first
    link = re.search(r"(DEMO-\d+)'s status page: https://status\.example\.test/status/([\w-]+)\n", first)
    assert link is not None, first
    open_tokens = query(sqlite_file, "SELECT public_token FROM job WHERE status = 'open'")
    assert (link.group(2),) in open_tokens
    assert query(
        sqlite_file, "SELECT count(*) FROM job WHERE status != 'completed' OR reference LIKE 'DEMO-%'"
    ) == [(12,)]
    assert query(sqlite_file, "SELECT count(*) > 500 FROM job WHERE reference LIKE 'H-%'") == [(1,)]
    assert query(sqlite_file, "SELECT count(*) FROM workflow") == [(2,)]
    assert query(sqlite_file, "SELECT count(*) FROM account") == [(3,)]  # with the past jobs' own
    events = query(sqlite_file, "SELECT type, data FROM job_event")
    for event_type, data in events:  # every event the demo writes is in the catalogue
        msgspec.convert(json.loads(str(data)), EVENT_PAYLOADS[EventType(str(event_type))], strict=True)
    # The demo's services re-estimate each change as the app's do, so the estimator's events are there too.
    assert {"created", "advance", "complete", "cost_added"} <= {t for t, _ in events}
    assert {"eta_moved", "cost_moved", "at_risk", "stuck"} & {t for t, _ in events}

    second = ok(env, "demo", "--if-empty")

    assert "demo seeded" not in second
    [second_key] = set(KEY.findall(second))
    assert second_key != first_key
    assert query(
        sqlite_file, "SELECT count(*) FROM job WHERE status != 'completed' OR reference LIKE 'DEMO-%'"
    ) == [(12,)]
    assert query(sqlite_file, "SELECT count(*) > 500 FROM job WHERE reference LIKE 'H-%'") == [(1,)]
    assert query(sqlite_file, "SELECT count(*) FROM workflow") == [(2,)]
    assert query(sqlite_file, "SELECT name, role, revoked_at IS NOT NULL FROM api_key ORDER BY id") == [
        ("demo", "staff", 1),
        ("demo", "staff", 0),
    ]


def test_demo_revokes_only_the_staff_key_it_printed_before(env: dict[str, str], sqlite_file: Path) -> None:
    ok(env, "migrate")
    ok(env, "keys", "create", "--role", "admin", "--name", "demo")  # an operator's own, however named
    ok(env, "demo", "--if-empty")

    ok(env, "demo", "--if-empty")

    assert query(sqlite_file, "SELECT name, role, revoked_at IS NOT NULL FROM api_key ORDER BY id") == [
        ("demo", "admin", 0),
        ("demo", "staff", 1),
        ("demo", "staff", 0),
    ]


# --- PostgreSQL ------------------------------------------------------------------------------------


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """A brand-new, empty PostgreSQL database (not the suite's shared one), dropped afterwards."""
    with new_postgres_database(postgres_url, "tracker_cli") as url:
        yield url


async def _pg_fetch(url: str, sql: str) -> list[tuple[object, ...]]:
    connection = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        return [tuple(row) for row in await connection.fetch(sql)]
    finally:
        await connection.close()


def pg(url: str, sql: str) -> list[tuple[object, ...]]:
    return asyncio.run(_pg_fetch(url, sql))


PG_TABLES = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
PG_COLUMNS = (
    "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
    "WHERE table_schema = 'public' ORDER BY 1, 2"
)


def test_migrate_applies_the_committed_migrations_to_a_fresh_postgres_database(
    fresh_postgres_url: str,
) -> None:
    env = {"TRACKER_DATABASE_URL": fresh_postgres_url}
    assert pg(fresh_postgres_url, PG_TABLES) == []

    output = ok(env, "migrate")

    assert "database is up to date" in output
    created = {str(row[0]) for row in pg(fresh_postgres_url, PG_TABLES)}
    assert {
        "job",
        "workflow",
        "stage",
        "account",
        "contact",
        "api_key",
        "job_event",
        "audit_entry",
    } <= created
    assert "tortoise_migrations" in created
    applied = pg(fresh_postgres_url, "SELECT * FROM tortoise_migrations ORDER BY 1")
    columns = pg(fresh_postgres_url, PG_COLUMNS)
    assert applied

    again = ok(env, "migrate")

    assert "database is up to date" in again
    assert pg(fresh_postgres_url, "SELECT * FROM tortoise_migrations ORDER BY 1") == applied
    assert pg(fresh_postgres_url, PG_COLUMNS) == columns


def test_the_migrated_postgres_schema_takes_the_demo_data(fresh_postgres_url: str) -> None:
    env = {"TRACKER_DATABASE_URL": fresh_postgres_url}
    ok(env, "migrate")

    output = ok(env, "demo", "--if-empty")

    assert "demo seeded: 12 jobs (9 open, 1 on hold, 1 completed, 1 cancelled)" in output
    assert KEY.search(output)
    assert pg(fresh_postgres_url, "SELECT count(*) FROM job WHERE reference LIKE 'DEMO-%'") == [(12,)]
    assert pg(fresh_postgres_url, "SELECT count(*) > 500 FROM job WHERE reference LIKE 'H-%'") == [(True,)]


# import-history, refit and backtest

LOG = """case,task,done_at,cost
c1,Welcome,2025-01-06T09:00:00,0
c1,Fix,2025-01-07T15:00:00,120.5
c1,Hand over,2025-01-08T10:00:00,0
c2,Welcome,2025-01-06T11:00:00,0
c2,Fix,2025-01-09T09:30:00,80
c2,Fix,2025-01-10T16:00:00,40
c2,Hand over,2025-01-13T08:00:00,0
"""
COLUMNS = ("--case", "case", "--activity", "task", "--timestamp", "done_at", "--cost", "cost")
MAPPING = ("--map", "Welcome=intake", "--map", "Fix=repair", "--map", "Hand over=ready")


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "old-system.csv"
    path.write_text(LOG)
    return path


@pytest.fixture
def demo_env(env: dict[str, str]) -> dict[str, str]:
    ok(env, "migrate")
    ok(env, "demo")
    return env


def test_import_history_loads_cases_as_finished_jobs_once(
    demo_env, log_file: Path, sqlite_file: Path
) -> None:
    output = ok(demo_env, "import-history", str(log_file), "--workflow", "car-repair", *COLUMNS, *MAPPING)
    assert "imported 2 cases (7 stage visits)" in output
    assert "refitted car-repair" in output
    rows = query(
        sqlite_file,
        "SELECT reference, status, stages_completed, actual_cost FROM job "
        "WHERE reference LIKE 'IMP-%' ORDER BY reference",
    )
    assert [(r[0], r[1], r[2], float(str(r[3]))) for r in rows] == [
        ("IMP-c1", "completed", 3, 120.5),
        ("IMP-c2", "completed", 4, 120.0),
    ]
    visits = query(
        sqlite_file,
        "SELECT v.stage_key FROM stage_visit v JOIN job j ON j.id = v.job_id "
        "WHERE j.reference = 'IMP-c2' ORDER BY v.id",
    )
    assert [v[0] for v in visits] == ["intake", "repair", "repair", "ready"]
    again = ok(demo_env, "import-history", str(log_file), "--workflow", "car-repair", *COLUMNS, *MAPPING)
    assert "imported 0 cases" in again
    assert "2 imported before were left as they were" in again
    assert query(sqlite_file, "SELECT count(*) FROM job WHERE reference LIKE 'IMP-%'") == [(2,)]


def test_import_history_names_activities_without_a_stage(demo_env, log_file: Path, sqlite_file: Path) -> None:
    result = run(
        demo_env,
        "import-history",
        str(log_file),
        "--workflow",
        "car-repair",
        *COLUMNS,
        "--map",
        "Welcome=intake",
    )
    assert result.exit_code == 1
    assert "Fix" in result.output
    assert "Hand over" in result.output
    assert query(sqlite_file, "SELECT count(*) FROM job WHERE reference LIKE 'IMP-%'") == [(0,)]


def test_import_history_into_an_unknown_workflow_fails(demo_env, log_file: Path) -> None:
    result = run(demo_env, "import-history", str(log_file), "--workflow", "boat-repair", *COLUMNS, *MAPPING)
    assert result.exit_code == 1
    assert "boat-repair" in result.output


def test_refit_reports_each_workflow(demo_env, sqlite_file: Path) -> None:
    output = ok(demo_env, "refit")
    assert "refitted car-repair" in output
    assert "refitted kitchen-renovation" in output
    assert query(sqlite_file, "SELECT count(DISTINCT workflow_key) FROM history_fit") == [(2,)]


def test_backtest_scores_a_log_against_its_baseline(env, log_file: Path, tmp_path: Path) -> None:
    predictions = tmp_path / "predictions.csv"
    output = ok(env, "backtest", str(log_file), *COLUMNS, "--predictions", str(predictions), "--json")
    report = json.loads(output)
    assert report["cases"] == 2
    assert report["predictions"] == 5
    header = predictions.read_text().splitlines()[0]
    assert header.split(",") == [*PREDICTION_HEADER, *COST_HEADER]
