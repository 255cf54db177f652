"""The `tracker` command, run in-process against a throwaway database.

The commands call `asyncio.run` themselves, so these tests are plain functions and open no `db` fixture.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner, Result
from tortoise.backends.base.executor import EXECUTOR_CACHE

from tests.conftest import _admin, _with_database
from tracker.cli import main
from tracker.services.workflows import forget_cached_versions

KEY = re.compile(r"trk_[0-9a-f]{12}_[A-Za-z0-9_-]{40,}")


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Each command runs as if in a new process: no compiled queries or workflows from another database."""
    EXECUTOR_CACHE.clear()
    forget_cached_versions()
    yield
    EXECUTOR_CACHE.clear()
    forget_cached_versions()


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
    assert lines[0].split() == ["ID", "ROLE", "PREFIX", "STATE", "NAME"]
    assert lines[1].split() == ["1", "staff", prefix, "active", "x"]
    assert lines[2].split()[:2] == ["2", "admin"]
    assert lines[2].split()[3:] == ["active", "ops", "team"]
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
    assert "name: must be 1 to 100 characters" in result.output
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


def test_demo_if_empty_seeds_once_and_prints_a_fresh_staff_key(
    env: dict[str, str], sqlite_file: Path
) -> None:
    ok(env, "migrate")

    first = ok(env, "demo", "--if-empty")

    assert "demo seeded: 12 open jobs" in first
    [first_key] = set(KEY.findall(first))
    assert "API docs: https://status.example.test/schema" in first
    assert query(
        sqlite_file, "SELECT count(*) FROM job WHERE status != 'completed' OR reference LIKE 'DEMO-%'"
    ) == [(12,)]
    assert query(sqlite_file, "SELECT count(*) > 500 FROM job WHERE reference LIKE 'H-%'") == [(1,)]
    assert query(sqlite_file, "SELECT count(*) FROM workflow") == [(2,)]
    assert query(sqlite_file, "SELECT count(*) FROM account") == [(2,)]

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


# --- PostgreSQL ------------------------------------------------------------------------------------


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """A brand-new, empty PostgreSQL database (not the suite's shared one), dropped afterwards."""
    name = f"tracker_cli_{secrets.token_hex(4)}"
    asyncio.run(_admin(postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(postgres_url, name)
    finally:
        asyncio.run(_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
    assert {"job", "workflow", "stage", "account", "contact", "api_key", "job_event"} <= created
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

    assert "demo seeded: 12 open jobs" in output
    assert KEY.search(output)
    assert pg(fresh_postgres_url, "SELECT count(*) FROM job WHERE reference LIKE 'DEMO-%'") == [(12,)]
    assert pg(fresh_postgres_url, "SELECT count(*) > 500 FROM job WHERE reference LIKE 'H-%'") == [(True,)]
