"""turnout.policies.privacy: what the detector finds in text, where it looks in a request, how
it redacts, and the ``privacy:`` configuration section."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.support import write_config
from turnout.config import PrivacyConfig, load_config
from turnout.exceptions import ConfigError
from turnout.policies.privacy import CATEGORIES, Detector, Finding, placeholder

DETECTOR = Detector()

AWS = "AKIA" + "Z7QK2M4P6R8T3V5X"
OPENAI = "sk-proj-" + "Xq3vT9bLm2Rk7Wd4Fh8Jn1Pc6Ys0Ga5Ue" * 2
GITHUB = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
RSA = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAx1y2z3\nAbCdEf0123==\n"
    "-----END RSA PRIVATE KEY-----"
)


def found(text: str, detector: Detector = DETECTOR) -> list[tuple[str, str]]:
    """(category, matched text) of every finding."""
    return [(f.category, text[f.start : f.end]) for f in detector.scan_text(text)]


# ---------------------------------------------------------------------- what is found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # e-mail
        ("mail john.doe+x@example.co.uk, thanks", [("email", "john.doe+x@example.co.uk")]),
        ("邮箱zhang@qq.com。", [("email", "zhang@qq.com")]),
        ("a.b@x.io: hi", [("email", "a.b@x.io")]),
        ("git clone git@github.com:org/repo.git", []),
        ("https://user:pw@example.com/path", []),
        ("@app.route and admin@localhost", []),
        # phones
        ("手机13800138000请回电", [("phone", "13800138000")]),
        ("电话：+86 138-0013-8000。", [("phone", "+86 138-0013-8000")]),
        ("(+86) 138 0013 8000", [("phone", "(+86) 138 0013 8000")]),
        (
            "北京 010-62345678，深圳0755-86013388",
            [("phone", "010-62345678"), ("phone", "0755-86013388")],
        ),
        (
            "call (415) 555-0132 or 415.555.0133",
            [("phone", "(415) 555-0132"), ("phone", "415.555.0133")],
        ),
        ("+44 20 7946 0958 is London", [("phone", "+44 20 7946 0958")]),
        ("1380013800012 is longer", []),  # a mobile number inside a bigger number
        ("ID13800138000", []),  # glued to letters: an identifier
        ("12345678901", []),  # 12 is not a mobile prefix
        ("0755-12345678", []),  # local numbers do not start with 1
        ("广州 020-8888 6666，", [("phone", "020-8888 6666")]),
        ("总机（0571）8765-4321 转 8001", [("phone", "（0571）8765-4321")]),
        ("1101 0519 4912 3100 2X", []),  # not a phone inside a longer group sequence
        ("2024-03-15 14:30:05", []),
        ("(115) 555-0132", []),  # no area code starts with 1
        ("+12.50 today", []),
        # national IDs
        ("身份证11010519491231002X。", [("national_id", "11010519491231002X")]),
        ("ID 110105 19491231 002X", [("national_id", "110105 19491231 002X")]),
        ("身份证110105194912310021", []),  # wrong check character
        ("SSN 536-22-8726.", [("national_id", "536-22-8726")]),
        ("SSN 666-22-8726", []),
        ("part 536-22-87265", []),
        # bank cards
        ("card 4111 1111 1111 1111 exp", [("bank_card", "4111 1111 1111 1111")]),
        ("卡号4111-1111-1111-1111。", [("bank_card", "4111-1111-1111-1111")]),
        ("amex 3782 822463 10005", [("bank_card", "3782 822463 10005")]),
        ("4111 1111 1111 1112", []),  # Luhn
        ("4111 1111-1111 1111", []),  # mixed separators: not one number
        ("IMEI 490154203237518", []),
        # IBAN
        ("IBAN DE89 3704 0044 0532 0130 00 thanks", [("iban", "DE89 3704 0044 0532 0130 00")]),
        ("账户GB82WEST12345698765432。", [("iban", "GB82WEST12345698765432")]),
        ("DE89370400440532013000 IS MINE", [("iban", "DE89370400440532013000")]),
        ("XDE89370400440532013000", []),
        ("DE88 3704 0044 0532 0130 00", []),
        # IP addresses
        ("host 192.168.1.20:8080;", [("ip_address", "192.168.1.20")]),
        ("服务器10.1.2.3上", [("ip_address", "10.1.2.3")]),
        ("fe80::1ff:fe23:4567:890a%eth0 up", [("ip_address", "fe80::1ff:fe23:4567:890a%eth0")]),
        ("version 1.2.3 and 1.2.3.4.5", []),
        ("v1.2.3.4 released", []),
        ("127.0.0.1 and ::1", []),
        ("peer ::ffff:10.0.0.1 and ::ffff:127.0.0.1", [("ip_address", "::ffff:10.0.0.1")]),
        ("a[1::2], std::vector, 12:30:45", []),
        # API keys
        (f"key={AWS}", [("api_key", AWS)]),
        (f"openai {OPENAI}", [("api_key", OPENAI)]),
        (f"https://{GITHUB}@github.com/x", [("api_key", GITHUB)]),
        ("use sk-learn and scikit-learn", []),
        ("sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxx", []),
        ("sk-learn-tutorial-for-beginners-2024", []),
        ("from huggingface_hub import hf_hub_download", []),
        # private keys
        (f"key:\n{RSA}\nthanks", [("private_key", RSA)]),
        ("-----BEGIN PUBLIC KEY-----\nMIIBIjANBg\n-----END PUBLIC KEY-----", []),
    ],
)
def test_what_is_found(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


def test_fullwidth_digits_and_at_sign_are_read_as_ascii() -> None:
    text = "手机：１３８００１３８０００，邮箱：ｗａｎｇ＠ｅｘａｍｐｌｅ．ｃｎ"
    assert found(text) == [
        ("phone", "１３８００１３８０００"),
        ("email", "ｗａｎｇ＠ｅｘａｍｐｌｅ．ｃｎ"),
    ]


def test_a_truncated_private_key_is_found_up_to_where_it_stops() -> None:
    block = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nAAAABG5vbmUAAAAE"
    assert found(f"{block}\n\nCan you read it?") == [("private_key", block)]


def test_two_key_blocks_are_two_findings() -> None:
    text = f"{RSA}\nand\n{RSA}"
    assert [f.category for f in DETECTOR.scan_text(text)] == ["private_key", "private_key"]


def test_findings_are_sorted_and_never_overlap() -> None:
    text = f"+86 138 0013 8000, {AWS} at 10.0.0.5 and 4111111111111111 and a@b.cn " * 3
    findings = DETECTOR.scan_text(text)
    assert len(findings) == 15
    for before, after in itertools.pairwise(findings):
        assert before.end <= after.start


def test_a_finding_never_shows_the_value() -> None:
    text = f"card 4111111111111111 key {AWS}"
    for finding in DETECTOR.scan_text(text):
        shown = repr(finding) + str(finding)
        assert "4111" not in shown and "AKIA" not in shown
        assert isinstance(finding, Finding)
    assert repr(Finding("email", 1, 2, "email")) == (
        "Finding(category='email', start=1, end=2, kind='email')"
    )


def test_kinds_name_the_format() -> None:
    kinds = {f.kind for f in DETECTOR.scan_text(f"4111111111111111 13800138000 {AWS} {RSA}")}
    assert kinds == {"visa", "cn_mobile", "aws_access_key_id", "rsa_private_key"}


# ------------------------------------------------------------------ redacting text


def test_redact_text_puts_typed_placeholders() -> None:
    text = "Mail a@b.cn or call 13800138000, card 4111 1111 1111 1111."
    redacted, categories = DETECTOR.redact_text(text)
    assert redacted == "Mail [EMAIL] or call [PHONE], card [BANK_CARD]."
    assert categories == {"email", "phone", "bank_card"}


def test_redact_text_without_findings_returns_the_same_text() -> None:
    text = "nothing to see here, version 1.2.3"
    redacted, categories = DETECTOR.redact_text(text)
    assert redacted is text and categories == frozenset()


def test_placeholders() -> None:
    assert [placeholder(c) for c in CATEGORIES] == [
        "[EMAIL]", "[PHONE]", "[NATIONAL_ID]", "[BANK_CARD]",
        "[IBAN]", "[IP_ADDRESS]", "[API_KEY]", "[PRIVATE_KEY]",
    ]  # fmt: skip
    assert placeholder("keyword") == "[KEYWORD]"
    assert placeholder("custom:employee_id") == "[EMPLOYEE_ID]"


# --------------------------------------------------------- categories, patterns, keywords


def test_only_the_configured_categories_are_looked_for() -> None:
    detector = Detector(PrivacyConfig(categories=["email"]))
    assert detector.categories == {"email"}
    assert found("a@b.cn 13800138000", detector) == [("email", "a@b.cn")]
    assert Detector(PrivacyConfig(categories=[])).scan_text("a@b.cn 13800138000") == []


def test_custom_patterns_are_named_custom() -> None:
    detector = Detector(
        PrivacyConfig(patterns={"employee_id": r"EMP-\d{6}", "ticket": r"(?i)tk\d+"})
    )
    assert found("by EMP-004211 on tk17 and TK9", detector) == [
        ("custom:employee_id", "EMP-004211"),
        ("custom:ticket", "tk17"),
        ("custom:ticket", "TK9"),
    ]
    assert detector.redact_text("EMP-004211")[0] == "[EMPLOYEE_ID]"
    assert {"custom:employee_id", "custom:ticket"} <= detector.categories


def test_a_custom_pattern_that_can_match_nothing_finds_nothing_empty() -> None:
    detector = Detector(PrivacyConfig(patterns={"x": r"x|\b"}))
    assert found("a x b", detector) == [("custom:x", "x")]


def test_keywords_match_any_case_and_the_longest_first() -> None:
    detector = Detector(PrivacyConfig(keywords=["Falcon", "project falcon", "机密", "C++ (v2)"]))
    assert found("PROJECT FALCON is 机密; falconry; c++ (V2)", detector) == [
        ("keyword", "PROJECT FALCON"),
        ("keyword", "机密"),
        ("keyword", "falcon"),
        ("keyword", "c++ (V2)"),
    ]
    assert detector.redact_text("project Falcon")[0] == "[KEYWORD]"
    assert "keyword" in detector.categories and "keyword" not in DETECTOR.categories


def test_keywords_are_found_where_lower_casing_changes_the_length() -> None:
    detector = Detector(PrivacyConfig(keywords=["falcon"]))
    text = "İstanbul office: FALCON and falcon"  # "İ".lower() is two characters
    assert len(text.lower()) != len(text)
    assert found(text, detector) == [("keyword", "FALCON"), ("keyword", "falcon")]


def test_fullwidth_text_matches_a_keyword_written_in_ascii() -> None:
    detector = Detector(PrivacyConfig(keywords=["Falcon"]))
    assert found("代号ＦＡＬＣＯＮ", detector) == [("keyword", "ＦＡＬＣＯＮ")]


def test_a_custom_finding_and_a_builtin_one_that_overlap_merge() -> None:
    detector = Detector(PrivacyConfig(patterns={"vip": r"VIP 138\d+"}))
    assert found("VIP 13800138000", detector) == [("custom:vip", "VIP 13800138000")]


# ----------------------------------------------------------------- where it looks


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages), **extra}


REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("string content", chat({"role": "user", "content": "mail a@b.cn"})),
    (
        "text part",
        chat(
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "https://x/13800138000.png"}},
                    {"type": "text", "text": "mail a@b.cn"},
                ],
            }
        ),
    ),
    (
        "system message",
        chat({"role": "system", "content": "ops a@b.cn"}, {"role": "user", "content": "hi"}),
    ),
    (
        "tool call arguments",
        chat(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "send", "arguments": '{"to": "a@b.cn"}'},
                    }
                ],
            }
        ),
    ),
    (
        "legacy function call",
        chat({"role": "assistant", "function_call": {"name": "f", "arguments": '{"x": "a@b.cn"}'}}),
    ),
    ("tool result", chat({"role": "tool", "tool_call_id": "c1", "content": "a@b.cn"})),
    ("completions prompt", {"model": "m", "prompt": "mail a@b.cn"}),
    ("completions prompt list", {"model": "m", "prompt": ["hi", "mail a@b.cn"]}),
    ("embeddings input", {"model": "m", "input": ["hi", "mail a@b.cn"]}),
    ("predict input", {"input": "mail a@b.cn"}),
    ("predict system", {"input": "hi", "system": "mail a@b.cn"}),
    ("anthropic system blocks", {"system": [{"type": "text", "text": "a@b.cn"}], "messages": []}),
    (
        "anthropic tool_use",
        chat(
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t", "name": "f", "input": {"to": "a@b.cn"}}
                ],
            }
        ),
    ),
    (
        "anthropic tool_result",
        chat(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "text", "text": "a@b.cn"}],
                    }
                ],
            }
        ),
    ),
]


@pytest.mark.parametrize(("where", "body"), REQUESTS, ids=[w for w, _ in REQUESTS])
def test_scan_and_redact_every_place_a_request_carries_text(
    where: str, body: dict[str, Any]
) -> None:
    original = copy.deepcopy(body)
    assert DETECTOR.scan_request(body) == {"email"}
    redacted, categories = DETECTOR.redact_request(body)
    assert categories == {"email"}
    assert body == original, "the caller's body was changed"
    assert "a@b.cn" not in json.dumps(redacted)
    assert "[EMAIL]" in json.dumps(redacted)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "prompt": [[1380013800, 4111111111111111]]},  # token ids
        {"model": "m", "input": [13800138000]},
        chat({"role": "user", "name": "a@b.cn", "content": "hi"}),
        {"model": "a@b.cn", "messages": []},
        {"user": "a@b.cn", "prompt": "hi"},
    ],
)
def test_places_without_prompt_text_are_not_scanned(body: dict[str, Any]) -> None:
    assert DETECTOR.scan_request(body) == frozenset()
    assert DETECTOR.redact_request(body)[0] is body


@pytest.mark.parametrize(
    "body",
    [
        {"messages": "a@b.cn"},
        {"messages": [None, 3, "a@b.cn", ["x"]]},
        {"messages": [{"content": 5}, {"content": [None, 1, {"type": "text", "text": 5}]}]},
        {"messages": [{"content": [{"type": "text"}, {"type": "tool_result", "content": 7}]}]},
        {"messages": [{"tool_calls": {"a": 1}}, {"tool_calls": [None, {"function": "x"}]}]},
        {"messages": [{"tool_calls": [{"function": {"arguments": None}}]}]},
        {"messages": [{"function_call": "x"}, {"function_call": {"name": "f"}}]},
        {"prompt": None, "input": {"a": "b"}, "system": 3},
        {"prompt": [None, {"x": 1}]},
    ],
)
def test_malformed_shapes_are_skipped_not_errors(body: dict[str, Any]) -> None:
    assert DETECTOR.scan_request(body) == frozenset()
    assert DETECTOR.redact_request(body) == (body, frozenset())


def test_a_body_that_is_not_an_object_is_skipped() -> None:
    for body in (None, [], "a@b.cn", 3):
        assert DETECTOR.scan_request(body) == frozenset()  # type: ignore[arg-type]
        assert DETECTOR.redact_request(body)[0] is body  # type: ignore[arg-type]


# ---------------------------------------------------------------------- redaction


def test_redact_request_returns_the_same_object_when_nothing_is_found() -> None:
    body = chat({"role": "user", "content": "hello, version 1.2.3"})
    redacted, categories = DETECTOR.redact_request(body)
    assert redacted is body and categories == frozenset()


def test_redaction_copies_only_what_changed() -> None:
    untouched = {"role": "system", "content": "be brief"}
    body = chat(untouched, {"role": "user", "content": "call 13800138000"}, temperature=0.2)
    redacted, categories = DETECTOR.redact_request(body)
    assert categories == {"phone"}
    assert redacted["messages"][0] is untouched
    assert redacted["messages"][1] == {"role": "user", "content": "call [PHONE]"}
    assert body["messages"][1]["content"] == "call 13800138000"
    assert redacted["temperature"] == 0.2


def tool_call(arguments: Any) -> dict[str, Any]:
    return chat(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
            ],
        }
    )


def arguments_of(body: dict[str, Any]) -> Any:
    return body["messages"][0]["tool_calls"][0]["function"]["arguments"]


def test_redacted_tool_arguments_stay_valid_json() -> None:
    arguments = json.dumps(
        {
            "to": "a@b.cn",
            "note": 'say "hi"\nto 13800138000\t(mobile)',
            "card": 4111111111111111,
            "count": 3,
            "ok": True,
            "nested": [{"ip": "10.0.0.5"}, None, 1.5],
            "名字": "张三 13900001111",
        },
        ensure_ascii=True,
    )
    redacted, categories = DETECTOR.redact_request(tool_call(arguments))
    assert categories == {"email", "phone", "bank_card", "ip_address"}
    assert json.loads(arguments_of(redacted)) == {
        "to": "[EMAIL]",
        "note": 'say "hi"\nto [PHONE]\t(mobile)',
        "card": "[BANK_CARD]",
        "count": 3,
        "ok": True,
        "nested": [{"ip": "[IP_ADDRESS]"}, None, 1.5],
        "名字": "张三 [PHONE]",
    }


def test_a_phone_after_an_escaped_newline_in_arguments_is_found() -> None:
    # in the raw JSON text the number follows "\\n": the letter n would hide it from a scan
    # of the raw text; the arguments are decoded first
    arguments = '{"text": "line one\\n13800138000"}'
    assert DETECTOR.scan_request(tool_call(arguments)) == {"phone"}


def test_arguments_that_are_not_json_are_redacted_as_text() -> None:
    redacted, _ = DETECTOR.redact_request(tool_call('{"to": "a@b.cn", '))
    assert arguments_of(redacted) == '{"to": "[EMAIL]", '


def test_arguments_with_integers_beyond_64_bits_still_parse() -> None:
    arguments = '{"big": 123456789012345678901234567890, "to": "a@b.cn"}'
    redacted, _ = DETECTOR.redact_request(tool_call(arguments))
    assert json.loads(arguments_of(redacted)) == {
        "big": 123456789012345678901234567890,
        "to": "[EMAIL]",
    }


def test_arguments_sent_as_an_object_are_walked() -> None:
    redacted, categories = DETECTOR.redact_request(tool_call({"to": "a@b.cn"}))
    assert categories == {"email"} and arguments_of(redacted) == {"to": "[EMAIL]"}


def test_deeply_nested_arguments_are_scanned_without_recursion_errors() -> None:
    deep: Any = "a@b.cn"
    for _ in range(5000):
        deep = [deep]
    assert DETECTOR.scan_request(tool_call(deep)) == {"email"}
    redacted, _ = DETECTOR.redact_request(tool_call(deep))
    assert arguments_of(redacted) == "[EMAIL]"
    text = "[" * 900 + '"a@b.cn"' + "]" * 900
    assert DETECTOR.scan_request(tool_call(text)) == {"email"}


# ----------------------------------------------------------------- configuration


def test_privacy_section_is_read_from_the_file(isolated: Path) -> None:
    path = write_config(
        isolated / "t.yaml",
        {
            "privacy": {
                "categories": ["email", "api_key"],
                "patterns": {"employee_id": "EMP-\\d{6}"},
                "keywords": ["Project Falcon"],
            }
        },
    )
    config = load_config(path, env={})
    assert config.privacy.categories == ["email", "api_key"]
    detector = Detector(config.privacy)
    assert detector.categories == {"email", "api_key", "custom:employee_id", "keyword"}


def test_privacy_defaults_are_everything_built_in() -> None:
    config = PrivacyConfig()
    assert (config.categories, config.patterns, config.keywords) == (None, {}, [])
    assert Detector().categories == set(CATEGORIES)


def config_error(isolated: Path, privacy: dict[str, Any]) -> str:
    path = write_config(isolated / "t.yaml", {"privacy": privacy})
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return info.value.message


def test_an_invalid_regex_names_the_key_and_the_fix(isolated: Path) -> None:
    message = config_error(isolated, {"patterns": {"employee_id": "EMP-(\\d{6}"}})
    assert "privacy.patterns" in message
    assert "employee_id: not a valid regular expression" in message
    assert "missing )" in message and "fix it" in message


def test_a_pattern_that_matches_empty_text_is_refused(isolated: Path) -> None:
    message = config_error(isolated, {"patterns": {"digits": "\\d*"}})
    assert "digits: the pattern matches empty text" in message


def test_a_bad_pattern_name_is_refused(isolated: Path) -> None:
    message = config_error(isolated, {"patterns": {"has space": "x"}})
    assert "pattern name 'has space'" in message


def test_an_unknown_category_lists_the_valid_ones(isolated: Path) -> None:
    message = config_error(isolated, {"categories": ["email", "passport"]})
    assert "privacy.categories: unknown category 'passport'" in message
    assert "choose from: " + ", ".join(CATEGORIES) in message


def test_an_empty_keyword_is_refused(isolated: Path) -> None:
    message = config_error(isolated, {"keywords": ["ok", "  "]})
    assert "keywords[1] is empty" in message


def test_a_misspelt_privacy_key_is_suggested(isolated: Path) -> None:
    message = config_error(isolated, {"keyword": ["x"]})
    assert "privacy.keyword: unknown key (did you mean 'keywords'?)" in message
