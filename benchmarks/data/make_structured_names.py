"""Names in structured text (CSV, JSON, tables, key=value), written 2026-12-03 before the recognizer."""
import hashlib, json, sys
P = [  # (text, [names])
 ("first_name,last_name,email\nanna,kowalski,a@x.org\nJOHN,SMITH,j@x.org", ["anna", "kowalski", "JOHN", "SMITH"]),
 ('{"first_name": "anna", "last_name": "kowalski"}', ["anna", "kowalski"]),
 ('{"customer_name": "maría lópez", "amount": 12.5}', ["maría lópez"]),
 ("| contact_name | phone |\n|---|---|\n| dieter braun | +49 30 1234567 |", ["dieter braun"]),
 ("owner=priya natarajan; team=payments", ["priya natarajan"]),
 ("assignee: TOM O'NEILL", ["TOM O'NEILL"]),
 ("full_name\tcountry\nli wei\tCN\nsophie martin\tFR", ["li wei", "sophie martin"]),
 ("surname;forename\nnguyen;thi lan\nmüller;jörg", ["nguyen", "thi lan", "müller", "jörg"]),
 ('[{"author": "kenji sato"}, {"author": "amara okafor"}]', ["kenji sato", "amara okafor"]),
 ("reporter: j. r. hartley", ["j. r. hartley"]),
 ("employee_name,salary\nfatima zahra,52000", ["fatima zahra"]),
 ('{"user": {"display_name": "olu adeyemi", "id": 7}}', ["olu adeyemi"]),
 ("customer_first_name | customer_last_name\nines | ferreira", ["ines", "ferreira"]),
 ("manager = 'wojciech nowak'", ["wojciech nowak"]),
 ("patient_name: EMMA JOHANSSON, ward 4", ["EMMA JOHANSSON"]),
 ("recipient_name,city\nhannah schmidt,Berlin", ["hannah schmidt"]),
 ('"lastName": "van der berg", "firstName": "pieter"', ["van der berg", "pieter"]),
 ("contact: ahmed hassan (on call)", ["ahmed hassan"]),
 ("driver_name,route\nlucas silva,R12\nmei chen,R7", ["lucas silva", "mei chen"]),
 ("Holder name: KAROLINA NOVAKOVA", ["KAROLINA NOVAKOVA"]),
]
N = [  # structured text with name-like columns that are not people
 "product_name,price\nwidget pro,12.50\nsuper gadget,9.99",
 '{"campaign_name": "spring sale", "spend": 1200}',
 "| name | kind |\n|---|---|\n| orders | dataset |\n| customer profile | product |",
 "table_name,row_count\ncustomer_profile,1200\norders,5400",
 '{"domain_name": "example.org", "host_name": "db1"}',
 "name=orders; kind=dataset",
 "company_name,country\nacme gmbh,DE",
 "file_name: contracts/orders.odcs.yaml",
 '{"team_name": "customer insights", "channel": "web"}',
 "status,reason\nreturned,damaged\nshipped,",
 "first_name,last_name\nnull,null\nn/a,unknown",
 "column_name | data_type\nfirst_name | VARCHAR\nlast_name | VARCHAR",
 '{"job_name": "commerce.ingest_orders", "state": "COMPLETE"}',
 "city,country\nberlin,germany\nparis,france",
 "owner: customer-insights",
 "contact: support@example.org",
]
rows = [{"text": t, "names": n, "split": "test" if int(hashlib.sha256(t.encode()).hexdigest(), 16) % 2 else "dev"} for t, n in P]
rows += [{"text": t, "names": [], "split": "test" if int(hashlib.sha256(t.encode()).hexdigest(), 16) % 2 else "dev"} for t in N]
open(sys.argv[1], "w").write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
from collections import Counter; print(len(rows), Counter((bool(r["names"]), r["split"]) for r in rows))
