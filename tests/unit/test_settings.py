"""Settings read from `TRACKER_*` environment variables: defaults, typed parsing and validation."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest

from tracker.settings import DEFAULT_SQLITE_PATH, Settings, SettingsError

BOOL_FIELDS = [
    "metrics_public",
    "api_docs_public",
    "log_json",
    "scheduler_enabled",
    "dispatcher_enabled",
    "webhook_allow_http",
]
INT_FIELDS = [
    "port",
    "max_body_bytes",
    "recompute_interval_s",
    "refit_interval_s",
    "recompute_batch_size",
    "shutdown_grace_s",
    "smtp_port",
    "smtp_timeout_s",
    "smtp_connections",
    "email_fold_s",
    "estimate_email_interval_s",
    "webhook_secret_rotation_s",
    "dispatcher_sweep_s",
    "dispatcher_lease_s",
    "status_poll_s",
    "page_requests_per_minute",
    "session_max_age_s",
]
STR_FIELDS = [
    "database_url",
    "host",
    "public_base_url",
    "log_level",
    "smtp_host",
    "smtp_security",
    "smtp_username",
    "smtp_password",
    "mail_from",
    "staff_alert_emails",
    "staff_time_zone",
    "staff_language",
    "quiet_hours",
    "webhook_allowed_networks",
    "secret_key",
]
POSITIVE_FIELDS = [
    "max_body_bytes",
    "recompute_interval_s",
    "refit_interval_s",
    "recompute_batch_size",
    "smtp_timeout_s",
    "smtp_connections",
    "estimate_email_interval_s",
    "status_poll_s",
    "page_requests_per_minute",
    "dispatcher_sweep_s",
    "session_max_age_s",
]


def variable(field: str) -> str:
    return f"TRACKER_{field.upper()}"


def refused(environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ)
    return str(caught.value)


def test_every_field_is_covered_by_exactly_one_type_list() -> None:
    names = [spec.name for spec in dataclasses.fields(Settings)]
    assert sorted(names) == sorted(
        [*BOOL_FIELDS, *INT_FIELDS, *STR_FIELDS, "templates_dir", "over_budget_tolerance"]
    )


# --- Defaults -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"TRACKER_PORT": "8765"}, "http://127.0.0.1:8765"),
        ({"TRACKER_HOST": "0.0.0.0", "TRACKER_PORT": "9000"}, "http://127.0.0.1:9000"),  # noqa: S104
        ({"TRACKER_HOST": "tracker.lan"}, "http://tracker.lan:8000"),
        ({"TRACKER_HOST": "::1", "TRACKER_PORT": "9000"}, "http://[::1]:9000"),
        (
            {"TRACKER_PORT": "9000", "TRACKER_PUBLIC_BASE_URL": "https://status.example.com"},
            "https://status.example.com",
        ),
    ],
)
def test_links_follow_the_served_address_unless_a_public_address_is_set(
    environ: dict[str, str], expected: str
) -> None:
    assert Settings.from_env(environ).public_base_url == expected


def test_an_empty_environment_gives_the_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.database_url == "sqlite://data/tracker.sqlite3"
    assert settings.database_url == f"sqlite://{DEFAULT_SQLITE_PATH}"
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.public_base_url == "http://127.0.0.1:8000"
    assert settings.metrics_public is True
    assert settings.api_docs_public is True
    assert settings.max_body_bytes == 1_048_576
    assert settings.log_level == "INFO"
    assert settings.log_json is True
    assert settings.scheduler_enabled is True
    assert settings.recompute_interval_s == 300
    assert settings.refit_interval_s == 3600
    assert settings.recompute_batch_size == 1000
    assert settings.shutdown_grace_s == 20
    assert settings.is_sqlite


def test_the_default_templates_dir_is_the_absolute_repository_templates_folder() -> None:
    templates = Settings().templates_dir
    assert templates.is_absolute()
    assert templates.name == "templates"
    assert (templates.parent / "tracker" / "settings.py").is_file()


def test_variables_without_the_tracker_prefix_are_ignored() -> None:
    assert Settings.from_env({"PORT": "1", "HOST": "192.0.2.10", "tracker_port": "2"}) == Settings()


# --- Booleans -----------------------------------------------------------------------------------------------

TRUE_WORDS = ["1", "true", "TRUE", "True", "yes", "YES", "on", "On", " true ", "\tyes\n"]
FALSE_WORDS = ["0", "false", "FALSE", "no", "No", "off", "OFF", " off "]


@pytest.mark.parametrize("raw", TRUE_WORDS, ids=repr)
@pytest.mark.parametrize("field", BOOL_FIELDS)
def test_boolean_variables_accept_true_words(field: str, raw: str) -> None:
    settings = Settings.from_env({variable(field): raw})
    assert getattr(settings, field) is True


@pytest.mark.parametrize("raw", FALSE_WORDS, ids=repr)
@pytest.mark.parametrize("field", BOOL_FIELDS)
def test_boolean_variables_accept_false_words(field: str, raw: str) -> None:
    settings = Settings.from_env({variable(field): raw})
    assert getattr(settings, field) is False
    defaults = Settings()
    others = {
        name: getattr(settings, name) == getattr(defaults, name) for name in BOOL_FIELDS if name != field
    }
    assert all(others.values()), "only the named variable changes"


@pytest.mark.parametrize(
    "raw", ["", " ", "maybe", "2", "-1", "y", "n", "t", "f", "enabled", "truee"], ids=repr
)
@pytest.mark.parametrize("field", BOOL_FIELDS)
def test_a_malformed_boolean_names_the_variable_and_value(field: str, raw: str) -> None:
    message = refused({variable(field): raw})
    assert message == f"{variable(field)} must be true or false, not {raw!r}"


# --- Integers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", INT_FIELDS)
def test_integer_variables_are_parsed(field: str) -> None:
    settings = Settings.from_env({variable(field): "4242"})
    assert getattr(settings, field) == 4242
    assert type(getattr(settings, field)) is int


@pytest.mark.parametrize(("raw", "expected"), [(" 9000 ", 9000), ("+9000", 9000), ("09000", 9000)], ids=repr)
def test_integers_tolerate_surrounding_whitespace_sign_and_leading_zeros(raw: str, expected: int) -> None:
    assert Settings.from_env({"TRACKER_PORT": raw}).port == expected


@pytest.mark.parametrize("raw", ["", " ", "abc", "1.5", "8k", "1e3", "0x10", "ten", "1 000"], ids=repr)
@pytest.mark.parametrize("field", INT_FIELDS)
def test_a_malformed_integer_names_the_variable_and_value(field: str, raw: str) -> None:
    message = refused({variable(field): raw})
    assert message == f"{variable(field)} must be a whole number, not {raw!r}"


def test_a_malformed_integer_keeps_the_parsing_error_as_its_cause() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"TRACKER_PORT": "eighty"})
    assert isinstance(caught.value.__cause__, ValueError)


# --- Strings and paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("database_url", "postgres://tracker@db:5432/tracker"),
        ("host", "192.0.2.10"),
        ("public_base_url", "https://status.example.com"),
        ("log_level", "DEBUG"),
        ("log_level", ""),
        ("staff_time_zone", "Europe/Brussels"),
    ],
)
def test_string_variables_are_taken_verbatim(field: str, raw: str) -> None:
    assert getattr(Settings.from_env({variable(field): raw}), field) == raw


@pytest.mark.parametrize("raw", ["/srv/tracker/templates", "custom/templates", "."])
def test_the_templates_dir_is_read_as_a_path(raw: str) -> None:
    settings = Settings.from_env({"TRACKER_TEMPLATES_DIR": raw})
    assert settings.templates_dir == Path(raw)
    assert isinstance(settings.templates_dir, Path)


def test_the_over_budget_tolerance_is_a_decimal_fraction() -> None:
    assert Settings().over_budget_tolerance == Decimal("0.05")
    settings = Settings.from_env({"TRACKER_OVER_BUDGET_TOLERANCE": " 0.1 "})
    assert settings.over_budget_tolerance == Decimal("0.1")
    assert isinstance(settings.over_budget_tolerance, Decimal)


@pytest.mark.parametrize("raw", ["five", "-0.01", "NaN", "Infinity"])
def test_a_malformed_over_budget_tolerance_is_refused(raw: str) -> None:
    assert "TRACKER_OVER_BUDGET_TOLERANCE" in refused({"TRACKER_OVER_BUDGET_TOLERANCE": raw})


def test_several_variables_combine() -> None:
    settings = Settings.from_env(
        {
            "TRACKER_DATABASE_URL": "postgresql://u@h/db",
            "TRACKER_PORT": "9000",
            "TRACKER_LOG_JSON": "no",
            "TRACKER_TEMPLATES_DIR": "/tpl",
        }
    )
    assert (settings.database_url, settings.port, settings.log_json) == ("postgresql://u@h/db", 9000, False)
    assert settings.templates_dir == Path("/tpl")
    assert not settings.is_sqlite


# --- Validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "is_sqlite"),
    [
        ("sqlite://data/x.sqlite3", True),
        ("sqlite://:memory:", True),
        ("postgres://u@h:5432/db", False),
        ("postgresql://u@h/db", False),
        ("asyncpg://u@h/db", False),
    ],
)
def test_supported_database_url_schemes_are_accepted(url: str, is_sqlite: bool) -> None:
    settings = Settings.from_env({"TRACKER_DATABASE_URL": url})
    assert settings.database_url == url
    assert settings.is_sqlite is is_sqlite


@pytest.mark.parametrize(
    "url",
    [
        "",
        "mysql://u@h/db",
        "sqlite:/data/x",
        "sqlite:data/x",
        "SQLITE://x",
        "Postgres://u@h/db",
        "data/x.sqlite3",
    ],
    ids=repr,
)
def test_an_unsupported_database_url_is_refused(url: str) -> None:
    assert refused({"TRACKER_DATABASE_URL": url}) == (
        "TRACKER_DATABASE_URL must start with sqlite:// or postgres:// (or postgresql://)"
    )


@pytest.mark.parametrize("raw", ["0", "-1", "-3600"])
@pytest.mark.parametrize("field", POSITIVE_FIELDS)
def test_sizes_and_intervals_must_be_positive(field: str, raw: str) -> None:
    assert refused({variable(field): raw}) == f"{variable(field)} must be positive"


@pytest.mark.parametrize("field", POSITIVE_FIELDS)
def test_one_is_the_smallest_accepted_size_or_interval(field: str) -> None:
    assert getattr(Settings.from_env({variable(field): "1"}), field) == 1


def test_validate_can_be_called_on_settings_built_directly() -> None:
    Settings(database_url="postgres://u@h/db").validate()
    with pytest.raises(SettingsError, match="TRACKER_REFIT_INTERVAL_S must be positive"):
        Settings(refit_interval_s=0).validate()


def test_the_database_url_is_checked_before_the_numbers() -> None:
    message = refused({"TRACKER_DATABASE_URL": "mysql://x", "TRACKER_MAX_BODY_BYTES": "0"})
    assert message.startswith("TRACKER_DATABASE_URL")


def test_a_malformed_value_fails_before_validation() -> None:
    message = refused({"TRACKER_DATABASE_URL": "mysql://x", "TRACKER_PORT": "http"})
    assert message.startswith("TRACKER_PORT")


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TRACKER_SMTP_SECURITY": "opportunistic"}, "TRACKER_SMTP_SECURITY must be starttls, tls or none"),
        ({"TRACKER_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8, nope"}, "TRACKER_WEBHOOK_ALLOWED_NETWORKS"),
        ({"TRACKER_QUIET_HOURS": "9pm-8am"}, "TRACKER_QUIET_HOURS must look like 21:00-08:00"),
        ({"TRACKER_EMAIL_FOLD_S": "-1"}, "TRACKER_EMAIL_FOLD_S must not be negative"),
        ({"TRACKER_DISPATCHER_LEASE_S": "10"}, "TRACKER_DISPATCHER_LEASE_S must be more than 10"),
        ({"TRACKER_STAFF_TIME_ZONE": "Europe/Atlantis"}, "TRACKER_STAFF_TIME_ZONE must name a time zone"),
        ({"TRACKER_STAFF_TIME_ZONE": "../etc/passwd"}, "TRACKER_STAFF_TIME_ZONE must name a time zone"),
        ({"TRACKER_STAFF_LANGUAGE": "es"}, "TRACKER_STAFF_LANGUAGE must be one of en, fr, nl, de"),
    ],
)
def test_notification_settings_are_checked(environ: dict[str, str], message: str) -> None:
    assert message in refused(environ)


def test_lists_are_comma_separated() -> None:
    settings = Settings.from_env(
        {
            "TRACKER_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8, ::1/128",
            "TRACKER_STAFF_ALERT_EMAILS": "desk@garage.example, ,boss@garage.example",
        }
    )
    assert [str(network) for network in settings.webhook_networks] == ["127.0.0.0/8", "::1/128"]
    assert settings.staff_alert_addresses == ("desk@garage.example", "boss@garage.example")


def test_the_smtp_password_is_never_in_the_settings_repr() -> None:
    assert "hunter2" not in repr(Settings.from_env({"TRACKER_SMTP_PASSWORD": "hunter2"}))
