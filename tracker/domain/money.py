"""Money: a `Decimal` amount in an ISO 4217 currency, never a float."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from babel.numbers import get_currency_precision, is_currency

from tracker.domain.errors import InvalidInput

MAX_DIGITS = 16
LARGEST = Decimal(10) ** 14 - 1
"""No amount tracker keeps, a job's costs added up and its projections included, is larger: the money
columns hold 18 digits, 4 of them decimals."""


def check_currency(code: str, *, field: str = "currency") -> str:
    if len(code) != 3 or not code.isalpha() or not code.isupper() or not is_currency(code):
        raise InvalidInput(field, f"{code!r} is not an ISO 4217 currency code")
    return code


def parse_amount(raw: str | Decimal, currency: str, *, field: str, allow_negative: bool = False) -> Decimal:
    """Parse a decimal string, refusing more precision than the currency has minor units."""
    try:
        amount = raw if isinstance(raw, Decimal) else Decimal(raw)
    except (InvalidOperation, ValueError):
        raise InvalidInput(field, f"{raw!r} is not a decimal number") from None
    if not amount.is_finite():
        raise InvalidInput(field, "must be a finite number")
    if amount < 0 and not allow_negative:
        raise InvalidInput(field, "must not be negative")
    places = get_currency_precision(currency)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise InvalidInput(field, f"{currency} has {places} decimal places")
    if abs(amount) >= Decimal(10) ** (MAX_DIGITS - places):
        raise InvalidInput(field, "is too large")
    # `+ 0` turns a negative zero into zero, so "-0" never shows as "-0.00".
    return amount.quantize(Decimal(1).scaleb(-places)) + 0


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str

    @classmethod
    def parse(cls, amount: str | Decimal, currency: str, *, field: str) -> Money:
        code = check_currency(currency, field=f"{field}.currency")
        return cls(parse_amount(amount, code, field=f"{field}.amount"), code)

    @classmethod
    def in_minor_units(cls, amount: Decimal, currency: str) -> Money:
        """An amount as shown: stored amounts have four places, the currency usually fewer."""
        places = get_currency_precision(currency)
        return cls(amount.quantize(Decimal(1).scaleb(-places)), currency)

    def as_json(self) -> dict[str, str]:
        return {"amount": str(self.amount), "currency": self.currency}
