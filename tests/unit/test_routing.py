"""Route evaluation: message type patterns, MSH-3/MSH-4, field predicates, all/any/not."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from eai.config import MessageTypeSet, Route
from eai.routing import Routable, RouteDecision, evaluate, when_matches
from tests._routing import Header, Message, msg, route, when


def test_fake_message_is_routable() -> None:
    message: Routable = msg()
    assert message.header.message_type == "ADT^A01"


@pytest.mark.parametrize(
    ("pattern", "message_type", "expected"),
    [
        ("ADT^A01", "ADT^A01", True),
        ("ADT^A01", "ADT^A01^ADT_A01", True),
        ("ADT^A01", "ADT^A02", False),
        ("ADT^A01", "ORU^A01", False),
        ("ADT^*", "ADT^A40", True),
        ("ADT^*", "ADT", True),
        ("ADT", "ADT^A08", True),
        ("ADT", "ORU^R01", False),
        ("*^A01", "ADT^A01", True),
        ("*^A01", "ADT^A02", False),
        ("*^A01", "ADT", False),
        ("*", "ORU^R01", True),
        ("*^*", "SIU^S12", True),
    ],
)
def test_message_type_patterns(pattern: str, message_type: str, expected: bool) -> None:
    assert when_matches(when({"message_type": [pattern]}), msg(message_type)) is expected
    assert (message_type in MessageTypeSet.of([pattern])) is expected


def test_message_type_list_is_any_of() -> None:
    condition = when({"message_type": ["ADT^A01", "ORU"]})
    assert when_matches(condition, msg("ORU^R01"))
    assert when_matches(condition, msg("ADT^A01"))
    assert not when_matches(condition, msg("ADT^A02"))


@pytest.mark.parametrize("bad", ["ADT-A01", "adt^a01", "ADT^", "AD^A01", "^A01", ""])
def test_bad_message_type_patterns(bad: str) -> None:
    with pytest.raises(ValidationError, match="is not a message type pattern"):
        when({"message_type": [bad]})


def test_sending_application_and_facility() -> None:
    assert when_matches(when({"sending_application": ["ORBIS", "DXCARE"]}), msg())
    assert not when_matches(when({"sending_application": ["DXCARE"]}), msg())
    assert when_matches(when({"sending_facility": ["CHU-X"]}), msg())
    assert not when_matches(when({"sending_facility": ["CHU-Y"]}), msg())


def test_keys_of_one_when_are_and() -> None:
    condition = when({"message_type": ["ADT"], "sending_facility": ["CHU-X"]})
    assert when_matches(condition, msg("ADT^A01"))
    assert not when_matches(condition, msg("ORU^R01"))
    other = Message(Header(sending_facility="CHU-Y"))
    assert not when_matches(condition, other)


def test_field_in() -> None:
    condition = when({"field": "PV1-2", "in": ["I", "O"]})
    assert when_matches(condition, msg("ADT^A01", {"PV1-2": "I"}))
    assert when_matches(condition, msg("ADT^A01", {"PV1-2": "O"}))
    assert not when_matches(condition, msg("ADT^A01", {"PV1-2": "E"}))
    assert not when_matches(condition, msg())


def test_field_equals_matches_exists() -> None:
    assert when_matches(when({"field": "PV1-2", "equals": "I"}), msg("ADT^A01", {"PV1-2": "I"}))
    assert not when_matches(
        when({"field": "PV1-2", "equals": "I"}), msg("ADT^A01", {"PV1-2": "II"})
    )
    postcode = when({"field": "PID-11.5", "matches": "^75[0-9]{3}$"})
    assert when_matches(postcode, msg("ADT^A01", {"PID-11.5": "75013"}))
    assert not when_matches(postcode, msg("ADT^A01", {"PID-11.5": "92100"}))
    assert when_matches(
        when({"field": "PV1-3", "matches": "REA"}), msg("ADT^A01", {"PV1-3": "UF-REA-2"})
    )
    assert when_matches(when({"field": "PV1-2", "exists": True}), msg("ADT^A01", {"PV1-2": "I"}))
    assert not when_matches(when({"field": "PV1-2", "exists": True}), msg())
    assert when_matches(when({"field": "PV1-2", "exists": False}), msg())


def test_regex_is_compiled_at_load() -> None:
    condition = when({"field": "PV1-2", "matches": "^[IO]$"})
    assert condition.matches is not None and condition.matches.pattern == "^[IO]$"
    with pytest.raises(ValidationError, match="invalid regular expression"):
        when({"field": "PV1-2", "matches": "(["})


def test_all_any_not() -> None:
    inpatient = {"field": "PV1-2", "in": ["I"]}
    adt = {"message_type": ["ADT"]}
    assert when_matches(when({"all": [inpatient, adt]}), msg("ADT^A01", {"PV1-2": "I"}))
    assert not when_matches(when({"all": [inpatient, adt]}), msg("ORU^R01", {"PV1-2": "I"}))
    assert when_matches(when({"any": [inpatient, adt]}), msg("ORU^R01", {"PV1-2": "I"}))
    assert not when_matches(when({"any": [inpatient, adt]}), msg("ORU^R01", {"PV1-2": "O"}))
    assert when_matches(when({"not": inpatient}), msg("ADT^A01", {"PV1-2": "O"}))
    assert not when_matches(when({"not": inpatient}), msg("ADT^A01", {"PV1-2": "I"}))
    nested = when(
        {"message_type": ["ADT"], "not": {"any": [inpatient, {"field": "PV1-2", "equals": "E"}]}}
    )
    assert when_matches(nested, msg("ADT^A01", {"PV1-2": "O"}))
    assert not when_matches(nested, msg("ADT^A01", {"PV1-2": "E"}))


def test_empty_when_matches_everything() -> None:
    assert when_matches(when({}), msg("ORU^R01"))


def test_evaluate_picks_routes_in_order_and_unions_destinations() -> None:
    routes = [
        route("adt", {"message_type": ["ADT"]}, to=["dcc", "archive"]),
        route("other-listener", from_=["elsewhere"], to=["nowhere"]),
        route("inpatients", {"field": "PV1-2", "in": ["I"]}, to=["archive", "bed-manager"]),
        route("oru", {"message_type": ["ORU"]}, to=["lab"]),
        route("everything", to=["dcc"]),
    ]
    decision = evaluate(routes, "in", msg("ADT^A01", {"PV1-2": "I"}))
    assert decision == RouteDecision(
        routes=("adt", "inpatients", "everything"),
        destinations=("dcc", "archive", "bed-manager"),
    )


def test_evaluate_checks_the_listener() -> None:
    routes = [route("r", from_=["a", "b"])]
    assert evaluate(routes, "b", msg()).routes == ("r",)
    assert evaluate(routes, "c", msg()) == RouteDecision((), ())


def test_no_matching_route_gives_an_empty_decision() -> None:
    routes = [route("oru", {"message_type": ["ORU"]})]
    decision = evaluate(routes, "in", msg("ADT^A01"))
    assert decision.routes == () and decision.destinations == ()
    assert evaluate([], "in", msg()) == RouteDecision((), ())


def test_route_needs_from_and_to() -> None:
    with pytest.raises(ValidationError):
        Route.model_validate({"name": "r", "from": ["a"], "to": []})
    with pytest.raises(ValidationError):
        Route.model_validate({"name": "r", "to": ["b"]})
    assert Route(name="r", from_=("a",), to=("b",)).from_ == ("a",)


def test_conditions_compare_by_their_keys_and_survive_pickling() -> None:
    import pickle

    data = {"all": [{"field": "PV1-2", "in": ["I"]}, {"not": {"message_type": ["ORU"]}}]}
    condition = when(data)
    assert condition == when(data) and hash(condition) == hash(when(data))
    assert condition != when({**data, "any": [{"sending_facility": ["CHU-Y"]}]})
    back = pickle.loads(pickle.dumps(condition))
    assert back == condition
    assert when_matches(back, msg("ADT^A01", {"PV1-2": "I"}))
    assert not when_matches(back, msg("ORU^R01", {"PV1-2": "I"}))
