"""Valid by construction: every ServiceRequest the HL7 v2 and pad mappings accept validates in
fhir.resources R4B, so the intake need not validate it again (`intake.validate_mapped`, off).

Over generated and mutated REF^I12 messages and pad answers, for each mapping the gateway accepts:
- fhir.resources R4B validates the mapped JSON (the ServiceRequest and every contained resource);
- the model the mapping hands the intake, built without validation (gateway/canonical/trusted.py),
  equals the validated one;
- the validated model dumps to exactly that JSON (what is stored and published is what it parses
  to), checked on one accepted case in four (a dump costs twice a validation; the golden tests check
  it on every sample).
A message the mapping refuses must be refused with a GatewayError. The default run tries tens of
thousands of cases; `make fuzz` (FUZZ_EXAMPLES) tries more.
"""

from __future__ import annotations

import os
from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.inbound.pad import inbound as pad_inbound
from gateway.canonical.referral import InboundReferral
from gateway.errors import GatewayError
from gateway.settings import SCHEMAS_DIR, PadSettings
from tests.hl7v2.messages import CUSTOM, ESCAPES, IAPT, MSK, ZSEG, referral, sample
from tests.pad import pads
from tests.trust.test_fuzz import mutated_hl7

NOT_VALID_FHIR = "does not make a valid FHIR"
#: Cases per property: the default run's share, or with FUZZ_EXAMPLES (make fuzz) eight times that many
#: REF^I12 messages and that many pads.
SCALE = int(os.environ.get("FUZZ_EXAMPLES", "0"))
PROPERTY = settings(
    deadline=None,
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=list(HealthCheck),
    database=None,
)

#: Text an HL7 component may carry: whitespace of every kind (no-break, em, NEL, the separators below
#: 32), controls, escapes, ASCII and other digits, signs, letters, an emoji. Drawn from this alphabet
#: rather than all of Unicode: as searching, and far cheaper to draw.
ALPHABET = " \t\u00a0\u2003\u0085\x1c\x11&\\+-.:/#_0123456789\u0663\u17e7AEFHNRSTXZaez@\u00e9\U0001f600"
HL7_TEXT = st.text(alphabet=ALPHABET, max_size=24)
TIMESTAMPS = st.tuples(
    st.integers(0, 99_991_231_235_959),
    st.integers(2, 14),
    st.sampled_from(["", ".5", ".1234", ".1234567"]),
    st.sampled_from(["", "+0000", "-0000", "+0130", "-1400", "+1401", "+2500", "+0060", "+01", "Z"]),
).map(lambda t: f"{t[0]:014d}"[: t[1]] + (t[2] + t[3] if t[1] >= 10 else t[3]))
NUMBERS = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["inf", "-Infinity", "nan", "1e400", "1_000", "-0", ".5", "5.", "0x10", " 7 ", "+3", "1e5"]),
)
VALUES = st.one_of(HL7_TEXT, TIMESTAMPS, NUMBERS, st.sampled_from(["", " ", '""', "\\E\\"]))
BASES = [sample(name).replace("\n", "\r").rstrip("\r").split("\r") for name in (MSK, IAPT, ESCAPES, ZSEG)]

#: The fields the mapping reads (segment, field, components): where a generated value does the most.
MAPPED = [
    *(("RF1", f, c) for f, c in ((1, 1), (2, 1), (3, 6), (5, 6), (6, 4), (7, 1), (8, 1), (9, 1))),
    *(("PRD", f, c) for f, c in ((1, 1), (2, 7), (3, 7), (5, 12), (7, 2))),
    *(("PID", f, c) for f, c in ((3, 5), (5, 7), (7, 1), (8, 1), (11, 7), (13, 12), (14, 4))),
    *(("DG1", f, c) for f, c in ((3, 6), (4, 1))),
    *(("OBX", f, c) for f, c in ((2, 1), (3, 6), (5, 6), (6, 3), (11, 1), (14, 1))),
    ("NTE", 3, 1),
    ("MSH", 7, 1),
]
Change = tuple[tuple[str, int, int], int, int, int, str]


def generated_hl7() -> st.SearchStrategy[str]:
    """One of the samples with one to four of the components the mapping reads replaced (any
    occurrence of the segment, any repetition), and now and then a segment repeated or dropped."""
    change = st.tuples(st.sampled_from(MAPPED), st.integers(0, 3), st.integers(0, 2), st.integers(1, 12), VALUES)

    def build(choice: tuple[int, list[Change], int]) -> str:
        base, changes, shuffle = choice
        lines = list(BASES[base % len(BASES)])
        for (name, field, components), occurrence, repetition, component, value in changes:
            found = [i for i, line in enumerate(lines) if line.startswith(f"{name}|")]
            if found:
                index = found[occurrence % len(found)]
                at = field - 1 if name == "MSH" else field
                lines[index] = _replaced(lines[index], at, repetition, 1 + (component - 1) % components, value)
        if shuffle % 7 == 1:
            del lines[1 + shuffle % (len(lines) - 1)]
        elif shuffle % 7 == 2:
            lines.insert(1 + shuffle % (len(lines) - 1), lines[1 + shuffle % (len(lines) - 1)])
        return "\r".join(lines)

    return st.tuples(st.integers(0, 3), st.lists(change, min_size=1, max_size=4), st.integers(0, 30)).map(build)


def _replaced(line: str, field: int, repetition: int, component: int, value: str) -> str:
    """`line` with FIELD~repetition^component set to `value` (separators in `value` stay text)."""
    value = value.replace("|", "\\F\\").replace("^", "\\S\\").replace("~", "\\R\\").replace("\r", " ")
    fields = line.split("|")
    fields += [""] * (field + 1 - len(fields))
    reps = fields[field].split("~")
    reps += [""] * (repetition + 1 - len(reps))
    parts = reps[repetition].split("^")
    parts += [""] * (component - len(parts))
    parts[component - 1] = value
    reps[repetition] = "^".join(parts)
    fields[field] = "~".join(reps)
    return "|".join(fields)


def assert_valid_by_construction(inbound: InboundReferral, dumped: bool = True) -> None:
    """Valid in fhir.resources, the same model built without validation, and (`dumped`) the JSON the
    model dumps: dumping costs twice a validation, so the properties ask for it on one case in four."""
    data = inbound.resource
    assert data is not None, "a mapping hands the intake the JSON it built"
    validated = ServiceRequest.model_validate(data)
    assert inbound.service_request == validated, "the model built without validation differs"
    if dumped:
        assert validated.model_dump(mode="json") == data, "the mapped JSON is not what its model dumps"


def mapped(text: str) -> InboundReferral | None:
    try:
        return referral(text)
    except GatewayError as error:
        refused_clearly(error)
        return None


def refused_clearly(error: GatewayError) -> None:
    """A refusal names what the message said wrong; never that a builder wrote a value FHIR refuses
    (gateway/canonical/trusted.py says so when it cannot build the model)."""
    assert error.message
    assert NOT_VALID_FHIR not in error.message, error.issues


def test_the_samples_map_valid_by_construction() -> None:
    for name in (MSK, IAPT, ESCAPES, ZSEG, CUSTOM):
        inbound = mapped(sample(name))
        assert inbound is not None, name
        assert_valid_by_construction(inbound)


def test_every_accepted_ref_i12_validates_in_fhir_resources() -> None:
    counts = {"tried": 0, "accepted": 0}

    @settings(PROPERTY, max_examples=SCALE * 8 or 10_000)
    @given(st.one_of(generated_hl7(), generated_hl7(), mutated_hl7()))
    def mapping(text: str) -> None:
        counts["tried"] += 1
        inbound = mapped(text)
        if inbound is not None:
            counts["accepted"] += 1
            assert_valid_by_construction(inbound, dumped=counts["accepted"] % 4 == 1)

    mapping()
    print(f"\nvalid by construction, HL7 v2: {counts['tried']} messages, {counts['accepted']} accepted, all valid")
    assert counts["accepted"] > counts["tried"] // 4, "too few accepted messages to prove anything"


# -- the pad ----------------------------------------------------------------------------------

PAD = pads.pad()
PHYSIO, SELF = pads.physio_fields(), pads.self_fields()  # drawn once: strategies draw no randomness of their own
FORM_TEXT = st.one_of(HL7_TEXT, st.text(max_size=30), st.sampled_from(["", " ", "\u00a0", "a  b", " x\t"]))


def _options(link_id: str) -> list[str]:
    return [str(o.valueCoding.code) for o in PAD.items[link_id].answerOption or [] if o.valueCoding is not None]


def _answer(link_id: str, value: Any) -> st.SearchStrategy[Any]:
    """Another answer of the same kind as `value`, or none."""
    if isinstance(value, bool):
        kinds: st.SearchStrategy[Any] = st.booleans()
    elif isinstance(value, list):
        kinds = st.lists(st.sampled_from(_options(link_id) or ["x"]), max_size=4)
    elif _options(link_id):
        kinds = st.one_of(st.sampled_from(_options(link_id)), FORM_TEXT)
    else:
        kinds = st.one_of(FORM_TEXT, TIMESTAMPS, st.dates().map(str))
    return st.one_of(kinds, kinds, kinds, st.none())  # mostly another answer; now and then none


def generated_pad() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """A physiotherapist's pad or a self-referral with one to four answers changed or left out."""

    def changed(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        keys = sorted({*base, "patient.interpreter-needed", "patient.interpreter-language", "patient.access-needs"})
        one = st.sampled_from(keys).flatmap(lambda k: st.tuples(st.just(k), _answer(k, base.get(k, ""))))
        return st.lists(one, min_size=1, max_size=4).map(
            lambda changes: {k: v for k, v in {**base, **dict(changes)}.items() if v is not None}
        )

    return st.one_of(st.tuples(st.just("physiotherapist"), changed(PHYSIO)), st.tuples(st.just("self"), changed(SELF)))


def pad_mapped(variant: str, values: dict[str, Any]) -> InboundReferral | None:
    try:
        return pad_inbound.from_fields(
            values,
            "self" if variant == "self" else "physiotherapist",
            web_form=False,
            settings=PadSettings(),
            schemas_dir=SCHEMAS_DIR,
            correlation_id="corr-1",
            message_id="msg-1",
        )
    except GatewayError as error:
        refused_clearly(error)
        return None


def test_every_accepted_pad_validates_in_fhir_resources() -> None:
    counts = {"tried": 0, "accepted": 0}

    @settings(PROPERTY, max_examples=SCALE or 1_500)
    @given(generated_pad())
    def mapping(form: tuple[str, dict[str, Any]]) -> None:
        counts["tried"] += 1
        inbound = pad_mapped(*form)
        if inbound is not None:
            counts["accepted"] += 1
            assert_valid_by_construction(inbound, dumped=counts["accepted"] % 4 == 1)

    mapping()
    print(f"\nvalid by construction, pad: {counts['tried']} forms, {counts['accepted']} accepted, all valid")
    assert counts["accepted"] > counts["tried"] // 10, "too few accepted forms to prove anything"
