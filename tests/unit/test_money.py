"""Money: ISO 4217 currency codes and decimal amounts at each currency's precision."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from babel.numbers import is_currency

from tracker.domain.errors import InvalidInput
from tracker.domain.money import MAX_DIGITS, Money, check_currency, parse_amount

D = Decimal


def invalid(build: object, *args: object, **kwargs: object) -> InvalidInput:
    assert callable(build)
    with pytest.raises(InvalidInput) as caught:
        build(*args, **kwargs)
    error = caught.value
    assert error.detail == f"{error.field}: {error.reason}"
    return error


# --- check_currency -------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["EUR", "USD", "JPY", "GBP", "CHF", "BHD", "KWD"])
def test_known_iso_currency_codes_are_returned_unchanged(code: str) -> None:
    assert check_currency(code) == code


@pytest.mark.parametrize(
    "code", ["eur", "Eur", "EURO", "EU", "", "E1R", "EU ", " EUR", "ZZZ", "ÉUR", "123"], ids=repr
)
def test_malformed_or_unknown_currency_codes_are_refused(code: str) -> None:
    error = invalid(check_currency, code)
    assert error.field == "currency"
    assert error.reason == f"{code!r} is not an ISO 4217 currency code"


def test_a_refused_currency_is_reported_under_the_given_field() -> None:
    assert invalid(check_currency, "eur", field="quote.currency").field == "quote.currency"


@pytest.mark.parametrize("code", ["XXX", "XTS", "XAU"])
def test_iso_special_codes_that_babel_knows_are_accepted(code: str) -> None:
    # babel lists the ISO 4217 "no currency" (XXX), "testing" (XTS) and gold (XAU) codes as currencies.
    assert is_currency(code)
    assert check_currency(code) == code


# --- parse_amount: precision ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "currency", "expected"),
    [
        ("1500", "JPY", "1500"),
        ("0", "JPY", "0"),
        ("1E+2", "JPY", "100"),
        ("12", "EUR", "12.00"),
        ("12.3", "EUR", "12.30"),
        ("12.34", "EUR", "12.34"),
        ("0.01", "USD", "0.01"),
        (".5", "EUR", "0.50"),
        ("+7", "EUR", "7.00"),
        (" 1.5 ", "EUR", "1.50"),
        ("1", "BHD", "1.000"),
        ("1.234", "BHD", "1.234"),
        ("0.001", "KWD", "0.001"),
    ],
)
def test_amounts_are_quantized_to_the_currency_minor_units(raw: str, currency: str, expected: str) -> None:
    amount = parse_amount(raw, currency, field="price")
    assert amount == D(expected)
    assert str(amount) == expected


@pytest.mark.parametrize(
    ("raw", "currency", "places"),
    [
        ("100.5", "JPY", 0),
        ("0.1", "JPY", 0),
        ("12.345", "EUR", 2),
        ("0.001", "USD", 2),
        ("1.2345", "BHD", 3),
    ],
)
def test_more_decimal_places_than_the_currency_has_are_refused(raw: str, currency: str, places: int) -> None:
    error = invalid(parse_amount, raw, currency, field="price")
    assert error.field == "price"
    assert error.reason == f"{currency} has {places} decimal places"


@pytest.mark.parametrize(("raw", "currency"), [("100.00", "JPY"), ("1.230", "EUR"), ("1.0000", "BHD")])
def test_trailing_zeros_beyond_the_minor_units_count_as_extra_precision(raw: str, currency: str) -> None:
    assert invalid(parse_amount, raw, currency, field="price").reason.startswith(currency)


def test_a_decimal_input_is_checked_and_quantized_like_a_string() -> None:
    assert str(parse_amount(D("9.5"), "EUR", field="price")) == "9.50"
    assert invalid(parse_amount, D("9.505"), "EUR", field="price").field == "price"


# --- parse_amount: sign, non-finite, garbage, size ----------------------------------------------------


@pytest.mark.parametrize("raw", ["-1", "-0.01", D("-5")], ids=str)
def test_negative_amounts_are_refused_by_default(raw: str | Decimal) -> None:
    error = invalid(parse_amount, raw, "EUR", field="price")
    assert error.reason == "must not be negative"


@pytest.mark.parametrize(("raw", "expected"), [("-1", "-1.00"), ("-0.01", "-0.01"), ("-12.5", "-12.50")])
def test_negative_amounts_are_accepted_when_allowed(raw: str, expected: str) -> None:
    assert str(parse_amount(raw, "EUR", field="delta", allow_negative=True)) == expected


@pytest.mark.parametrize(
    "raw", ["NaN", "nan", "-NaN", "sNaN", "Infinity", "inf", "-Infinity", D("NaN")], ids=str
)
@pytest.mark.parametrize("allow_negative", [False, True])
def test_non_finite_amounts_are_refused(raw: str | Decimal, allow_negative: bool) -> None:
    error = invalid(parse_amount, raw, "EUR", field="price", allow_negative=allow_negative)
    assert error.reason == "must be a finite number"


@pytest.mark.parametrize(
    "raw", ["", " ", "abc", "1,50", "1.2.3", "€5", "5 EUR", "0x10", "1e", "--1", "1 000", "½"], ids=repr
)
def test_strings_that_are_not_decimal_numbers_are_refused(raw: str) -> None:
    error = invalid(parse_amount, raw, "EUR", field="price")
    assert error.field == "price"
    assert error.reason == f"{raw!r} is not a decimal number"


@pytest.mark.parametrize(
    ("largest", "currency"),
    [("9999999999999999", "JPY"), ("99999999999999.99", "EUR"), ("9999999999999.999", "BHD")],
)
def test_the_largest_amount_with_sixteen_digits_is_accepted(largest: str, currency: str) -> None:
    amount = parse_amount(largest, currency, field="price")
    assert amount == D(largest)
    assert len(amount.as_tuple().digits) == MAX_DIGITS


@pytest.mark.parametrize(
    ("raw", "currency"),
    [
        ("10000000000000000", "JPY"),
        ("100000000000000", "EUR"),
        ("100000000000000.00", "EUR"),
        ("1E+14", "EUR"),
        ("1E+999999", "EUR"),
        ("10000000000000", "BHD"),
    ],
)
def test_amounts_with_more_than_sixteen_digits_are_too_large(raw: str, currency: str) -> None:
    assert invalid(parse_amount, raw, currency, field="price").reason == "is too large"


def test_a_too_large_negative_amount_is_refused_even_when_negatives_are_allowed() -> None:
    error = invalid(parse_amount, "-100000000000000", "EUR", field="delta", allow_negative=True)
    assert error.reason == "is too large"


def test_checks_run_sign_before_precision_before_size() -> None:
    assert invalid(parse_amount, "-1.234", "EUR", field="p").reason == "must not be negative"
    assert invalid(parse_amount, "100000000000000.001", "EUR", field="p").reason == "EUR has 2 decimal places"


# --- Money ------------------------------------------------------------------------------------------------


def test_money_parse_checks_the_currency_and_quantizes_the_amount() -> None:
    assert Money.parse("12.5", "EUR", field="quote") == Money(D("12.50"), "EUR")
    assert Money.parse(D(1500), "JPY", field="quote") == Money(D(1500), "JPY")


def test_money_parse_names_the_currency_field() -> None:
    error = invalid(Money.parse, "12.50", "eur", field="quote")
    assert error.field == "quote.currency"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("abc", "'abc' is not a decimal number"),
        ("-1", "must not be negative"),
        ("1.5", "JPY has 0 decimal places"),
    ],
)
def test_money_parse_names_the_amount_field(raw: str, reason: str) -> None:
    error = invalid(Money.parse, raw, "JPY", field="quote")
    assert error.field == "quote.amount"
    assert error.reason == reason


def test_money_parse_checks_the_currency_before_the_amount() -> None:
    assert invalid(Money.parse, "garbage", "EURO", field="quote").field == "quote.currency"


def test_money_parse_refuses_negative_amounts() -> None:
    assert invalid(Money.parse, "-3", "EUR", field="refund").field == "refund.amount"


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("12.5", "EUR", {"amount": "12.50", "currency": "EUR"}),
        ("1500", "JPY", {"amount": "1500", "currency": "JPY"}),
        ("0.5", "BHD", {"amount": "0.500", "currency": "BHD"}),
        ("0", "USD", {"amount": "0.00", "currency": "USD"}),
        ("99999999999999.99", "EUR", {"amount": "99999999999999.99", "currency": "EUR"}),
    ],
)
def test_as_json_gives_the_amount_as_a_plain_string_with_the_currency(
    amount: str, currency: str, expected: dict[str, str]
) -> None:
    assert Money.parse(amount, currency, field="quote").as_json() == expected


def test_as_json_never_uses_exponent_notation_for_parsed_amounts() -> None:
    assert Money.parse("1E+3", "EUR", field="quote").as_json()["amount"] == "1000.00"


def test_negative_zero_is_serialized_as_zero() -> None:
    assert Money.parse("-0", "EUR", field="quote").as_json()["amount"] == "0.00"


def test_money_is_immutable_and_compared_by_value() -> None:
    money = Money(D("1.00"), "EUR")
    assert money == Money(D("1.00"), "EUR")
    assert money != Money(D("1.00"), "USD")
    with pytest.raises(dataclasses.FrozenInstanceError):
        money.amount = D(2)  # type: ignore[misc]
