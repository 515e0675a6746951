"""The one command parser: words, ids, matchers, durations, comments, and the errors people will make."""

import pytest

from alert_router.chat.commands import ParseError, command_from_button, parse_command, tokenize
from alert_router.matchers import MatchOp
from alert_router.render.actions import Action, encode_action


def test_tokenize_keeps_quoted_values_and_braces_whole() -> None:
    assert tokenize('silence {alertname="A B", x=~"1|2"} 2h "planned work"') == [
        "silence", '{alertname="A B", x=~"1|2"}', "2h", '"planned work"']


def test_tokenize_normalizes_smart_quotes_from_chat_clients() -> None:
    assert tokenize("alerts alertname=\u201cA B\u201d") == ["alerts", 'alertname="A B"']


def test_unterminated_quote_is_an_error() -> None:
    with pytest.raises(ParseError, match="unterminated"):
        parse_command('alerts alertname="oops')


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_means_help(text: str) -> None:
    assert parse_command(text).name == "help"


def test_alerts_with_matchers() -> None:
    cmd = parse_command('alerts severity=critical namespace=~"prod|staging"')
    assert cmd.name == "alerts"
    assert [(m.name, m.op, m.value) for m in cmd.matchers] == [
        ("severity", MatchOp.EQ, "critical"), ("namespace", MatchOp.RE, "prod|staging")]


def test_ack_takes_one_or_more_ids_lowercased() -> None:
    assert parse_command("ack 2BB1035C").ids == ("2bb1035c",)
    assert parse_command("/ack 2bb1 ffee0011").ids == ("2bb1", "ffee0011")


@pytest.mark.parametrize("text", ["ack", "ack ab", "ack not-an-id!"])
def test_ack_needs_a_valid_id(text: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_command(text)
    assert err.value.command == "ack"


def test_silence_by_id_with_duration_and_comment() -> None:
    cmd = parse_command('silence 2bb1035c 1h30m "deploying v2" now')
    assert (cmd.name, cmd.ids, cmd.duration, cmd.comment) == ("silence", ("2bb1035c",), 5400.0, "deploying v2 now")
    assert not cmd.matchers


def test_silence_by_matchers() -> None:
    cmd = parse_command('silence alertname=Foo {namespace="prod", job!="x"} 30m')
    assert cmd.ids == () and cmd.duration == 1800.0 and cmd.comment == ""
    assert [str(m) for m in cmd.matchers] == ['alertname="Foo"', 'namespace="prod"', 'job!="x"']


def test_an_all_digit_id_is_not_taken_for_a_duration() -> None:
    cmd = parse_command("silence 12345678 2h")
    assert cmd.ids == ("12345678",) and cmd.duration == 7200.0


@pytest.mark.parametrize("text", ["silence", "silence 2bb1035c", "silence 2h", "silence alertname=~( 1h",
                                  "silence 2bb1035c 0s"])
def test_silence_mistakes(text: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_command(text)
    assert err.value.command == "silence"


def test_unsilence_and_runbook_subcommands() -> None:
    assert parse_command("unsilence 0b9f5c2e-1b6a-4a59-9d3e-0c8e2b1a9f00").silence_id.startswith("0b9f5c2e")
    assert parse_command("runbook").name == "runbook list"
    run = parse_command("runbook run restart 2bb1035c")
    assert (run.name, run.runbook, run.ids) == ("runbook run", "restart", ("2bb1035c",))
    assert parse_command("runbook approve #12").run_id == 12
    deny = parse_command('runbook deny 12 "not now" please')
    assert (deny.name, deny.run_id, deny.comment) == ("runbook deny", 12, "not now please")
    assert parse_command("approve 3").name == "runbook approve"


@pytest.mark.parametrize(("text", "command"), [("runbook frobnicate", "runbook list"), ("runbook run x", "runbook run"),
                                              ("runbook approve twelve", "runbook approve"), ("status now", "status"),
                                              ("frobnicate", None)])
def test_unknown_words_and_bad_arguments(text: str, command: str | None) -> None:
    with pytest.raises(ParseError) as err:
        parse_command(text)
    assert err.value.command == command


def test_buttons_map_onto_commands() -> None:
    ack = command_from_button(encode_action(Action.ACK, "2bb1035c", "5f1e0a9d"))
    assert (ack.name, ack.ids, ack.group, ack.source) == ("ack", ("2bb1035c",), "5f1e0a9d", "button")
    sil = command_from_button(encode_action(Action.SILENCE_1H, None, "5f1e0a9d"))
    assert (sil.name, sil.ids, sil.duration) == ("silence", ("*",), 3600.0)
    assert command_from_button(encode_action(Action.RUNBOOK, "2bb1035c", "5f1e0a9d")).name == "runbook run"
    assert command_from_button("ar1:apr:42").run_id == 42
    assert command_from_button("ar1:dny:42").name == "runbook deny"
    with pytest.raises(ParseError):
        command_from_button("something-else")


@pytest.mark.parametrize(("action", "seconds"), [(Action.SILENCE_1H, 3600.0), (Action.SILENCE_4H, 4 * 3600.0),
                                                 (Action.SILENCE_24H, 24 * 3600.0)])
def test_silence_choices_map_to_their_durations(action: Action, seconds: float) -> None:
    cmd = command_from_button(encode_action(action, "2bb1035c", "5f1e0a9d"))
    assert cmd.name == "silence" and cmd.duration == seconds and cmd.ids == ("2bb1035c",)
