"""Writes src/meshpilot/evals/suites/pii_patterns.jsonl (frozen: re-running changes it; do not).
Usage: uv run python benchmarks/data/make_pii_patterns.py <out.jsonl>

E-mail addresses, IBANs (valid checksums, the national lengths of 20 countries, printed and electronic forms,
any case), card numbers (Luhn-valid, the brands' prefixes and lengths, grouped and not), US SSNs and IPv4/IPv6
addresses, each embedded in the shapes data-mesh text has: prose, CSV rows, JSON, Markdown tables, logs, SQL
results. Split by a hash of the text."""
import hashlib, json, random, string, sys

rng = random.Random(23)
IBAN_LENGTHS = {"DE": 22, "FR": 27, "GB": 22, "ES": 24, "IT": 27, "NL": 18, "BE": 16, "CH": 21, "AT": 20, "PL": 28,
                "SE": 24, "DK": 18, "NO": 15, "FI": 18, "IE": 22, "PT": 25, "LU": 20, "CZ": 24, "HU": 28, "GR": 27}


def iban(country: str) -> str:
    # The letters national formats require: a 4-letter bank code (GB, NL, IE), Italy's check letter (CIN).
    letters = {"GB": 4, "NL": 4, "IE": 4, "IT": 1}.get(country, 0)
    bank = "".join(rng.choice(string.ascii_uppercase) for _ in range(letters))
    rest = "".join(rng.choice(string.digits) for _ in range(IBAN_LENGTHS[country] - 4 - len(bank)))
    bban = bank + rest
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    return f"{country}{check:02d}{bban}"


def luhn(prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, d in enumerate(reversed(body)):
        n = int(d) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return body + str((10 - total % 10) % 10)


values = []
for country in IBAN_LENGTHS:
    code = iban(country)
    printed = " ".join(code[i:i + 4] for i in range(0, len(code), 4))
    values += [("IBAN_CODE", code), ("IBAN_CODE", printed), ("IBAN_CODE", printed.lower())]
for prefix, length in [("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15),
                       ("6011", 16), ("65", 16), ("3528", 16), ("3589", 16), ("36", 14), ("6304", 18), ("62", 16)]:
    number = luhn(prefix, length)
    values.append(("CREDIT_CARD", number))
    if length == 16:
        values.append(("CREDIT_CARD", " ".join(number[i:i + 4] for i in range(0, 16, 4))))
        values.append(("CREDIT_CARD", "-".join(number[i:i + 4] for i in range(0, 16, 4))))
for _ in range(25):
    area = rng.choice([n for n in range(1, 900) if n != 666])
    values.append(("US_SSN", f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"))
for _ in range(25):
    values.append(("IP_ADDRESS", ".".join(str(rng.randint(1, 254)) for _ in range(4))))
for _ in range(10):
    values.append(("IP_ADDRESS", ":".join(f"{rng.randint(0, 65535):x}" for _ in range(8))))
values += [("IP_ADDRESS", v) for v in ["2001:db8::ff00:42:8329", "fe80::1ff:fe23:4567:890a", "::ffff:192.0.2.128"]]
names = ["maria.keller", "j.smith", "o'brien", "anna-lena", "dev+alerts", "x_y", "li.wei", "first.last"]
domains = ["example.com", "mail.example.org", "corp.example.co.uk", "uni.example.edu", "example.de", "sub.example.io"]
for _ in range(40):
    values.append(("EMAIL_ADDRESS", f"{rng.choice(names)}{rng.randint(1, 99)}@{rng.choice(domains)}"))
templates = ["{v}", "Please use {v} from now on.", "id,value\n17,{v}", '{{"field": "{v}", "n": 3}}', "| key | {v} |",
             "2026-11-03T10:15:00Z INFO user={v} action=login", "customer wrote: my details are {v}, thanks",
             "SELECT * FROM t -> [('{v}',)]"]
rows = []
for entity, value in values:
    text = rng.choice(templates).format(v=value)
    rows.append({"text": text, "entity": entity, "value": value,
                 "split": "test" if int(hashlib.sha256(text.encode()).hexdigest(), 16) % 2 else "dev"})
open(sys.argv[1], "w").write("".join(json.dumps(r) + "\n" for r in rows))
print(len(rows))
