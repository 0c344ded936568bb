import os
import socket
import stat

import pytest

from meshpilot.errors import InvalidArgumentError
from meshpilot.guardrails import pii

TEXT = ("Hi, I am Maria Keller. Mail maria.keller@example.com or call +41 44 668 18 00. "
        "Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, SSN 536-22-8726, from 192.168.10.24.")


def types(text: str) -> dict[str, str]:
    return {f.entity_type: f.text for f in pii.analyze(text)}


def test_the_analyzer_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    pii._engine.cache_clear()
    pii._tld_extract.cache_clear()

    def no_network(*args, **kwargs):
        raise AssertionError("PII detection tried to reach the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert types("write to anna@example.org")["EMAIL_ADDRESS"] == "anna@example.org"


def test_pattern_entities_and_names_are_found() -> None:
    found = types(TEXT)
    assert found["EMAIL_ADDRESS"] == "maria.keller@example.com"
    assert found["PHONE_NUMBER"] == "+41 44 668 18 00"
    assert found["CREDIT_CARD"] == "4111 1111 1111 1111"
    assert found["IBAN_CODE"].replace(" ", "") == "DE89370400440532013000"
    assert found["US_SSN"] == "536-22-8726"
    assert found["IP_ADDRESS"] == "192.168.10.24"
    assert found["PERSON"] == "Maria Keller"


@pytest.mark.parametrize("text, entity, value", [
    ("My name is Rubija", "PERSON", "Rubija"),
    ("Dear Tomasz Kowalski, your order shipped.", "PERSON", "Tomasz Kowalski"),
    ("Call me on 0490 75 40 81 tomorrow", "PHONE_NUMBER", "0490 75 40 81"),
    ("JCB card 3558331500082481 was declined", "CREDIT_CARD", "3558331500082481"),
    ("She was born on 12/03/1984 in Leeds", "DATE_OF_BIRTH", "12/03/1984"),
])
def test_harder_cases(text: str, entity: str, value: str) -> None:
    assert types(text).get(entity) == value


@pytest.mark.parametrize("text, handle", [
    ("@jdoe can you check the orders pipeline?", "@jdoe"),
    ("thanks @maria.keller_2 for the fix", "@maria.keller_2"),
])
def test_handles_are_people(text: str, handle: str) -> None:
    assert types(text).get("PERSON") == handle


@pytest.mark.parametrize("text", ["@here the load is late", "write to ops@example.org", "SELECT * FROM t WHERE id = @id"])
def test_broadcasts_addresses_and_parameters_are_not_handles(text: str) -> None:
    assert not [f for f in pii.analyze(text) if f.entity_type == "PERSON" and f.text.startswith("@")]


@pytest.mark.parametrize("text, names", [
    ("first_name,last_name,email\nanna,kowalski,a@x.org\nJOHN,SMITH,j@x.org", {"anna", "kowalski", "JOHN", "SMITH"}),
    ('{"customerName": "maría lópez", "amount": 12.5}', {"maría lópez"}),
    ("| contact_name | phone |\n|---|---|\n| dieter braun | +49 30 1234567 |", {"dieter braun"}),
    ("assignee: TOM O'NEILL", {"TOM O'NEILL"}),
])
def test_names_in_csv_json_and_fields_are_found_in_any_case(text: str, names: set[str]) -> None:
    assert {f.text for f in pii.analyze(text) if f.entity_type == "PERSON"} == names


@pytest.mark.parametrize("text", ["product_name,price\nwidget pro,12.50", "| name | kind |\n|---|---|\n| orders | dataset |",
                                  "column_name | data_type\nfirst_name | VARCHAR", "first_name,last_name\nnull,n/a"])
def test_fields_that_hold_no_person_are_left_alone(text: str) -> None:
    assert "PERSON" not in types(text)


@pytest.mark.parametrize("phone", ["+353 1 234 5678", "+81-3-1234-5678", "+49 (0)89 12345678", "+7 495 123-45-67",
                                   "+55 11 91234-5678", "+971 4 123 4567", "+1 (415) 555-0123 ext. 42"])
def test_international_phones(phone: str) -> None:
    assert types(f"customer_id,phone\n42,{phone}").get("PHONE_NUMBER") == phone


@pytest.mark.parametrize("value", ["id 4155550123", "USD 99 999 999", "sum 000123456", "batch 2026-45-0001", "EUR 1.234.567,89"])
def test_ids_and_money_are_not_phones(value: str) -> None:
    assert "PHONE_NUMBER" not in types(value)


@pytest.mark.parametrize("text, iban", [
    ("iban: de89 3704 0044 0532 0130 00", "de89 3704 0044 0532 0130 00"),
    ("INFO user=BE65 7431 1882 8834 action=login", "BE65 7431 1882 8834"),
    ("Please use SE7382884413076079645654 from now on.", "SE7382884413076079645654"),
])
def test_ibans_in_any_case_and_next_to_words(text: str, iban: str) -> None:
    assert types(text).get("IBAN_CODE") == iban


def test_an_iban_with_a_wrong_checksum_is_no_iban() -> None:
    assert "IBAN_CODE" not in types("iban: de88 3704 0044 0532 0130 00")


def test_a_country_that_is_also_a_given_name_stays_a_place() -> None:
    assert "PERSON" not in types("Shipments to France and China doubled in October.")


@pytest.mark.parametrize("text", [
    "Revenue grew 12% in 2026-10 across 3 channels.",
    "SELECT count(*) FROM commerce.orders WHERE order_date >= '2026-01-01'",
    "The order 1234 shipped on 2026-11-03 10:15:00.",
])
def test_no_pii_in_ordinary_data_talk(text: str) -> None:
    assert not [f for f in pii.analyze(text) if f.entity_type in ("PHONE_NUMBER", "CREDIT_CARD", "PERSON", "EMAIL_ADDRESS")]


@pytest.mark.parametrize("amount", ["25788.46", "1,234,567.89", "4 512,30", "-9876543.2", "2578846.00", "12'345.60",
                                    "12345678.90", "4155550123.45"])
def test_amounts_are_not_phone_numbers(amount: str) -> None:
    for text in (amount, f"The total order amount is {amount}.", f"| sum_amount |\n| {amount} |"):
        assert "PHONE_NUMBER" not in types(text), text


@pytest.mark.parametrize("phone", ["+49 30 1234567", "(555) 123-4567", "555.123.4567", "+44 20 7946 0958",
                                   "0490 75 40 81"])
def test_phone_numbers_next_to_amounts_are_still_found(phone: str) -> None:
    assert types(f"Refunds came to 25788.46; call {phone} about them.").get("PHONE_NUMBER") == phone


def test_operators() -> None:
    redacted, findings = pii.anonymize(TEXT, "redact")
    assert "maria.keller" not in redacted and "<EMAIL_ADDRESS>" in redacted and "<PERSON>" in redacted
    masked, _ = pii.anonymize(TEXT, "mask")
    assert "m***********@example.com" in masked and "**** **** **** 1111" in masked
    salt_a, salt_b = b"a" * 32, b"b" * 32
    hashed_a, _ = pii.anonymize(TEXT, "hash", salt=salt_a)
    assert hashed_a == pii.anonymize(TEXT, "hash", salt=salt_a)[0]  # stable within a workspace
    assert hashed_a != pii.anonymize(TEXT, "hash", salt=salt_b)[0]  # and not across workspaces
    assert "maria.keller" not in hashed_a and "<EMAIL_ADDRESS:" in hashed_a


def test_pseudonymisation_is_reversible_and_consistent() -> None:
    conversation = pii.Pseudonymizer()
    first, _ = pii.anonymize("Mail maria.keller@example.com now", "pseudonymize", pseudonymizer=conversation)
    second, _ = pii.anonymize("Did maria.keller@example.com or bob@example.org answer?", "pseudonymize",
                              pseudonymizer=conversation)
    assert first == "Mail <EMAIL_ADDRESS_1> now"
    assert second == "Did <EMAIL_ADDRESS_1> or <EMAIL_ADDRESS_2> answer?"
    assert conversation.restore("Reply to <EMAIL_ADDRESS_2>.") == "Reply to bob@example.org."
    assert conversation.restore("<EMAIL_ADDRESS_9> is unknown") == "<EMAIL_ADDRESS_9> is unknown"


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(InvalidArgumentError, match="Unknown PII operator 'shred'"):
        pii.anonymize("x", "shred")
    with pytest.raises(InvalidArgumentError, match="Unknown PII entity type"):
        pii.analyze("x", entities=["SHOE_SIZE"])
    with pytest.raises(InvalidArgumentError, match="needs the workspace salt"):
        pii.anonymize("a@b.com", "hash")
    assert pii.analyze("") == [] and pii.anonymize("   ")[0] == "   "


def test_workspace_salt_is_private_and_stable(tmp_path) -> None:
    salt = pii.workspace_salt(tmp_path)
    path = tmp_path / ".meshpilot" / "pii-salt"
    assert len(salt) == 32 and pii.workspace_salt(tmp_path) == salt
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    path.write_bytes(b"short")
    with pytest.raises(InvalidArgumentError, match="damaged"):
        pii.workspace_salt(tmp_path)


def test_cli_scan(cli) -> None:
    result = cli("pii", "scan", "Call +41 44 668 18 00 or write to maria.keller@example.com", "--json")
    assert result.code == 0
    assert "<PHONE_NUMBER>" in result.stdout and "maria.keller" not in result.stdout.split('"anonymized"')[1]
    bad = cli("pii", "scan", "x", "--operator", "shred")
    assert bad.code == 1 and "Unknown PII operator 'shred'" in bad.stderr


def test_quick_redaction_without_presidio() -> None:
    from meshpilot.guardrails.pii import quick_redact

    text = ("mail maria@example.com or +41 44 668 18 00, card 4111 1111 1111 1111, ip 10.1.2.3, "
            "IBAN DE89 3704 0044 0532 0130 00; total 25788.46 on 2025-01-31 for order 12345")
    redacted = quick_redact(text)
    for value in ("maria@example.com", "668 18 00", "4111 1111", "10.1.2.3", "DE89"):
        assert value not in redacted, value
    assert "25788.46" in redacted and "2025-01-31" in redacted and "12345" in redacted
    assert quick_redact("card 4111 1111 1111 1112") == "card 4111 1111 1111 1112"  # not Luhn-valid
