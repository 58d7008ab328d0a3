"""The one parser of a policy list request (filter, order_by, page_size, page_token)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest

from pdp.core import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    MAX_REQUEST_NUMBER,
    InputValidationError,
    PolicyQuery,
    PolicyQueryError,
    parse_list_params,
    parse_list_request,
    whole_number,
)


@dataclass(frozen=True)
class Request:
    """A stand-in for the origin's ListPoliciesRequest."""

    filter: str = ""
    order_by: str = ""
    page_size: int = 0
    page_token: str = ""


def refused_field(request: Request | dict[str, str]) -> str:
    """The field a refused request names (the test fails if it is accepted)."""
    with pytest.raises(PolicyQueryError) as raised:
        if isinstance(request, Request):
            parse_list_request(request)
        else:
            parse_list_params(request)
    assert [error.path for error in raised.value.errors] == [raised.value.errors[0].path]
    assert raised.value.errors[0].path in str(raised.value)
    return raised.value.errors[0].path


def test_an_empty_request_lists_everything_by_id_in_default_pages() -> None:
    """No filter, no order, no size: every policy, ordered by id, DEFAULT_PAGE_SIZE at a time."""
    query = parse_list_request(Request())
    assert query == PolicyQuery()
    assert query.filters == {}
    assert query.full_order == (("id", False),)
    assert query.page_size == DEFAULT_PAGE_SIZE


def test_the_origin_filter_sets_each_key_whatever_the_case_or_quotes() -> None:
    """`type=SECURITY and enabled='true' AND severity=High` is three typed terms."""
    query = parse_list_request(Request(
        filter="type=SECURITY and enabled='true' AND severity=High AND enforcement = warn"))
    assert query.filters == {"type": "security", "enabled": True, "severity": "high",
                             "enforcement": "warn"}


@pytest.mark.parametrize("expression", [
    "colour=red", "enabled=maybe", "enabled=1", "enabled=yes", "type=SECRET", "severity=urgent",
    "enforcement=block", "type", "type=", "=security", "type=security AND",
    "type=security AND type=pricing", "type=security OR severity=high",
])
def test_a_bad_filter_is_refused_naming_filter(expression: str) -> None:
    """Unknown keys, values outside a key's set (`enabled=1` included), a key given twice and
    anything but `key=value AND ...` are refused, never a query that silently matches nothing."""
    assert refused_field(Request(filter=expression)) == "filter"


def test_order_by_takes_comma_separated_fields_with_directions() -> None:
    """`severity desc, NAME` orders by severity descending, then name, then the id tie-break."""
    query = parse_list_request(Request(order_by="severity desc, NAME"))
    assert query.order == (("severity", True), ("name", False))
    assert query.full_order == (("severity", True), ("name", False), ("id", False))


@pytest.mark.parametrize("order_by", ["popularity", "name sideways", "name asc desc", "name,",
                                      ",name"])
def test_a_bad_order_by_is_refused_naming_order_by(order_by: str) -> None:
    """Unknown fields, directions other than asc/desc and empty terms are refused."""
    assert refused_field(Request(order_by=order_by)) == "order_by"


@pytest.mark.parametrize(("asked", "given"), [(0, DEFAULT_PAGE_SIZE), (1, 1),
                                              (MAX_PAGE_SIZE + 1, MAX_PAGE_SIZE)])
def test_page_size_zero_means_the_default_and_a_large_one_is_lowered(asked: int,
                                                                    given: int) -> None:
    """gRPC's unset 0 is the default; above the maximum is lowered to it (AIP-158)."""
    assert parse_list_request(Request(page_size=asked)).page_size == given


def test_a_negative_page_size_is_refused() -> None:
    """A negative page_size is the client's mistake."""
    assert refused_field(Request(page_size=-1)) == "page_size"


def test_a_page_token_carries_the_next_offset() -> None:
    """The token of a page leads to the following one, and the last page has none."""
    first = parse_list_request(Request(filter="severity=high", order_by="name", page_size=2))
    token = first.next_page_token(total=5)
    second = parse_list_request(Request(filter="severity=high", order_by="name", page_size=2,
                                        page_token=token))
    assert second.offset == 2
    assert second.next_page_token(total=4) == ""


@pytest.mark.parametrize("other", [Request(filter="severity=low", page_size=2),
                                   Request(order_by="name desc", page_size=2),
                                   Request(filter="enabled=false", page_size=2)])
def test_a_page_token_is_refused_with_another_filter_or_order(other: Request) -> None:
    """A token pages only the listing it came from; elsewhere it would skip or repeat rows."""
    token = parse_list_request(Request(page_size=2)).next_page_token(total=5)
    assert refused_field(Request(other.filter, other.order_by, 2, token)) == "page_token"


def test_a_page_token_may_change_the_page_size() -> None:
    """The size is not part of what the token is tied to."""
    token = parse_list_request(Request(page_size=2)).next_page_token(total=5)
    assert parse_list_request(Request(page_size=3, page_token=token)).offset == 2


@pytest.mark.parametrize("token", [
    "not-a-token", "%%%", base64.urlsafe_b64encode(b"o:99999999999999999999").decode(),
    base64.urlsafe_b64encode(b"o:-1:x").decode(), base64.urlsafe_b64encode(b"o:\xff").decode(),
    base64.urlsafe_b64encode("o:٣:x".encode()).decode(),
])
def test_a_token_not_made_here_is_refused(token: str) -> None:
    """Garbage, negative, non-ASCII or unstorable offsets are INVALID_ARGUMENT, not a crash."""
    assert refused_field(Request(page_token=token)) == "page_token"


def test_http_parameters_and_the_origin_filter_give_the_same_query() -> None:
    """`?type=security&enabled=true` is `type=SECURITY AND enabled=true`: same page, same token."""
    over_grpc = parse_list_request(Request(filter="type=SECURITY AND enabled=true",
                                           order_by="name desc", page_size=2))
    over_http = parse_list_params({"type": "security", "enabled": "true",
                                   "order_by": "name desc", "page_size": "2"})
    assert over_http == over_grpc
    token = over_grpc.next_page_token(total=9)
    assert parse_list_params({"type": "security", "enabled": "true", "order_by": "name desc",
                              "page_size": "2", "page_token": token}).offset == 2


def test_empty_http_paging_parameters_are_unset() -> None:
    """`?page_token=&order_by=&page_size=` is a first page in the default order and size."""
    assert parse_list_params({"page_token": "", "order_by": "", "page_size": ""}) == PolicyQuery()


@pytest.mark.parametrize(("params", "field"), [
    ({"type": "nonsense"}, "type"), ({"enabled": "perhaps"}, "enabled"),
    ({"enabled": "1"}, "enabled"), ({"severity": ""}, "severity"),
    ({"enforcement": "block"}, "enforcement"), ({"order_by": "colour"}, "order_by"),
    ({"page_size": "0"}, "page_size"), ({"page_size": "-1"}, "page_size"),
    ({"page_size": "٣"}, "page_size"), ({"page_size": "99999999999999999999"}, "page_size"),
    ({"page_size": "9" * 5000}, "page_size"),
    ({"page_token": "xyz"}, "page_token"), ({"sort": "id"}, "sort"),
])
def test_a_bad_http_parameter_is_refused_naming_it(params: dict[str, str], field: str) -> None:
    """Each bad or unknown query parameter is refused by its own name."""
    assert refused_field(params) == field


def test_numbers_are_ascii_digits_up_to_a_bigint_leading_zeros_aside() -> None:
    """Every number a request carries reads the same way: past a bigint, or past the 4,300
    digits int() takes, is "not a number" (a 400), never a server error."""
    assert whole_number("0" * 5000 + "7") == 7
    assert whole_number(str(MAX_REQUEST_NUMBER)) == MAX_REQUEST_NUMBER
    assert whole_number(str(MAX_REQUEST_NUMBER + 1)) is None
    assert whole_number("9" * 5000) is None
    assert whole_number("") is None and whole_number("0") == 0


def test_an_http_page_size_above_the_maximum_is_lowered() -> None:
    """As over gRPC, a large size is lowered rather than refused."""
    assert parse_list_params({"page_size": "5000"}).page_size == MAX_PAGE_SIZE


def test_a_refusal_is_an_input_validation_error() -> None:
    """Shells answer it 400 / INVALID_ARGUMENT like any bad input, naming the field."""
    with pytest.raises(InputValidationError, match="invalid filter: unknown key 'colour'"):
        parse_list_request(Request(filter="colour=red"))
