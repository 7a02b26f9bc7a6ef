"""Account-name validation and RFC 4514/4515 escaping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credo.ad.discovery import parse_urls
from credo.ad.names import escape_dn_value, escape_filter_value, managed_account_sam, validate_account_name
from credo.errors import InputError


@pytest.mark.parametrize("name", ["svc*", "a(b)*", "x,y", "a=b", "a\\b", "a\x00b", "a@b", " lead", "dot."])
def test_illegal_names(name: str) -> None:
    with pytest.raises(InputError):
        validate_account_name(name)


def test_msa_name_limit() -> None:
    assert managed_account_sam("svcauto") == "svcauto$"
    assert managed_account_sam("svcauto$") == "svcauto$"
    assert managed_account_sam("a" * 15) == "a" * 15 + "$"
    with pytest.raises(InputError, match="longer than 15"):
        managed_account_sam("a" * 16)


def test_filter_escaping_rfc4515() -> None:
    assert escape_filter_value("a*b(c)d\\e\x00") == "a\\2ab\\28c\\29d\\5ce\\00"


def test_dn_escaping_rfc4514() -> None:
    assert escape_dn_value("Doe, John+x") == "Doe\\, John\\+x"
    assert escape_dn_value(" lead") == "\\ lead"


@given(st.text(max_size=40))
def test_escaped_filter_values_have_no_bare_metacharacters(value: str) -> None:
    escaped = escape_filter_value(value)
    assert "*" not in escaped and "(" not in escaped and ")" not in escaped and "\x00" not in escaped


def test_url_lists() -> None:
    assert parse_urls("ldap://dc1.example.com, ldaps://dc2.example.com:636") == (
        "ldap://dc1.example.com",
        "ldaps://dc2.example.com:636",
    )
    with pytest.raises(InputError, match="invalid LDAP URL"):
        parse_urls("http://dc1.example.com")
