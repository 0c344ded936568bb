"""Writes src/meshpilot/evals/suites/pii_numbers.jsonl (frozen: re-running changes it; do not). Usage:
uv run python benchmarks/data/make_pii_numbers.py <demo warehouse.duckdb> <out.jsonl>

Numbers for the phone detector: international phones in many written forms, and numeric values that are
not phones (money, ids, versions, measures, dates, counts), from the demo warehouse and public data."""
import csv, glob, hashlib, json, random, sys
import os
import duckdb, phonenumbers
SHARED = os.environ.get("MESHPILOT_SHARED_DATA", "../shared/data")
from phonenumbers import PhoneNumberFormat as F
rng = random.Random(11)
rows = []
def add(text, phone, source):
    rows.append({"text": text, "phone": phone, "source": source})
templates = ["Call me on {p}.", "phone: {p}", "{p}", "Reach the on-call engineer at {p} if the load fails.",
             "customer_id,phone\n42,{p}", '{{"name": "x", "mobile": "{p}"}}', "| contact | {p} |",
             "Ticket 5521: customer says their number {p} is wrong", "tel {p} (office)", "Whatsapp {p}"]
# hand-written, the forms people type
for p in ["+353 1 234 5678", "+81-3-1234-5678", "+49 (0)89 12345678", "(020) 7946 0958", "+1 (415) 555-0123 ext. 42",
          "0049 30 1234567", "+33 6 12 34 56 78", "06 12 34 56 78", "+34 612 34 56 78", "+39 06 6982 1234",
          "+61 2 9374 4000", "(02) 9374 4000", "+91 98765 43210", "+55 11 91234-5678", "+52 55 1234 5678",
          "+27 21 123 4567", "+86 10 6552 9988", "+82 2-312-3456", "+65 6123 4567", "+971 4 123 4567",
          "+44 7700 900123", "07700 900123", "+31 20 123 4567", "+46 8 123 456 78", "+48 22 123 45 67",
          "+7 495 123-45-67", "+90 212 123 45 67", "+20 2 2345 6789", "+234 803 123 4567", "+1-202-555-0173",
          "202.555.0173", "1-800-555-0199", "+41 44 668 18 00", "+43 1 53114 0", "+32 2 123 45 67",
          "+351 21 123 4567", "+30 21 0123 4567", "+420 224 123 456", "+36 1 234 5678", "+64 9 123 4567"]:
    add(rng.choice(templates).format(p=p), p, "hand")
# every region's example numbers, in the international and national forms
for region in sorted(phonenumbers.SUPPORTED_REGIONS):
    for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
        n = phonenumbers.example_number_for_type(region, kind)
        if n is None:
            continue
        for fmt in (F.INTERNATIONAL, F.E164):
            p = phonenumbers.format_number(n, fmt)
            add(rng.choice(templates).format(p=p), p, f"example:{region}")
# negatives: every numeric value of the demo warehouse, as text in the forms a result shows
con = duckdb.connect(sys.argv[1], read_only=True)
for schema, table, column, type_ in con.execute("SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns").fetchall():
    if not any(t in type_ for t in ("DECIMAL", "DOUBLE", "INT", "DATE", "TIMESTAMP")):
        continue
    values = [r[0] for r in con.execute(f'SELECT DISTINCT "{column}" FROM {schema}.{table} WHERE "{column}" IS NOT NULL LIMIT 40').fetchall()]
    for v in values:
        add(rng.choice(["{v}", "The total is {v}.", "| {c} |\n| {v} |", '{{"{c}": {v}}}', "{c}={v}"]).format(v=v, c=column), None, f"demo:{table}.{column}")
    for agg in con.execute(f'SELECT sum("{column}") FROM {schema}.{table}').fetchall() if "DECIMAL" in type_ or "DOUBLE" in type_ else []:
        add(f"Total {column}: {agg[0]}", None, f"demo:sum({column})")
# public numeric columns
for path in glob.glob(SHARED + "/jaffle_shop_classic/seeds/*.csv"):
    for r in list(csv.DictReader(open(path)))[:60]:
        for k, v in r.items():
            if any(c.isdigit() for c in v):
                add(f"{k}: {v}", None, f"jaffle:{k}")
# hand-written numeric non-PII: versions, ids, measures, money in other notations
for v in ["v2.13.4", "version 10.0.19045.3693", "order 100045678", "INC-0003", "build 20261103.1", "12.5 kg", "1,234,567",
          "EUR 1.234.567,89", "$ 12,345,678.90", "1e-05", "3.14159265", "2026-11-03T10:15:00Z", "10:15:00", "192.0.2.1",
          "lat 48.8566, lon 2.3522", "ISBN 978-3-16-148410-0", "SKU 4006381333931", "uuid 123e4567-e89b-12d3-a456-426614174000",
          "port 5432", "p95 1234 ms", "row 1 234 567", "+12.5%", "-0.0034", "id 4155550123", "cost 4155550123.45",
          "2026-11-01 to 2026-11-30", "page 12 of 345", "batch 2026-45-0001", "commit 8cd15c1", "1 048 576 bytes",
          "temperature -12.3 C", "chapter 3.2.1", "sum 000123456", "4 512,30 EUR", "USD 99 999 999", "zip 10115"]:
    add(v, None, "hand-negative")
for r in rows:
    r["split"] = "test" if int(hashlib.sha256(r["text"].encode()).hexdigest(), 16) % 2 else "dev"
open(sys.argv[2], "w").write("".join(json.dumps(r) + "\n" for r in rows))
from collections import Counter
print(len(rows), Counter((r["phone"] is not None, r["split"]) for r in rows))
