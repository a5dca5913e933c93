"""Masking of personal data: the default whenever a value leaves the platform."""


def mask_id_no(value: str | None) -> str | None:
    """Keep the region prefix and the last digit: 330102********123X → 330102***********X."""
    if not value:
        return value
    if len(value) <= 7:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 7) + value[-1]


def mask_phone(value: str | None) -> str | None:
    """Keep the first three and last four digits of a phone number."""
    if not value:
        return value
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_name(value: str | None) -> str | None:
    """Keep the first character: 王小明 → 王**."""
    if not value:
        return value
    return value[0] + "*" * (len(value) - 1)
