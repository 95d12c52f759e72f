"""Masks for personal data in logs, artifacts and exception messages (CONVENTIONS.md)."""

from __future__ import annotations

from typing import Any


def mask_iban(iban: str | None) -> str:
    if not iban:
        return ""
    s = "".join(str(iban).split()).upper()
    if len(s) < 6:
        return "*" * len(s)
    masked = s[:2] + "*" * (len(s) - 6) + s[-4:]
    return " ".join(masked[i : i + 4] for i in range(0, len(masked), 4))


def mask_email(email: str | None) -> str:
    if not email:
        return ""
    local, _, domain = str(email).partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_phone(phone: str | None) -> str:
    if not phone:
        return ""
    s = str(phone)
    return "*" * max(len(s) - 2, 0) + s[-2:]


def mask_name(name: str | None) -> str:
    if not name:
        return ""
    return " ".join(part[:1] + "." for part in str(name).split())


PERSONAL_FIELDS = {
    "iban": mask_iban,
    "counterparty_iban": mask_iban,
    "email": mask_email,
    "phone": mask_phone,
    "name": mask_name,
    "counterparty_name": mask_name,
    "street": lambda v: "***" if v else "",
    "bsn": lambda v: "*********" if v else "",
}


def mask_value(column: str, value: Any) -> Any:
    """The value as it may appear in an artifact or log line."""
    fn = PERSONAL_FIELDS.get(column)
    if fn is None:
        return value
    return fn(None if value is None else str(value))


__all__ = ["mask_email", "mask_iban", "mask_name", "mask_phone", "mask_value"]
