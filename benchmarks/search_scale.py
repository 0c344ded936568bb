"""Catalog search at scale: a synthetic catalog of N datasets with about 20 columns each.

Measures the index build rate, the time to update one changed product incrementally, search latency
(p50/p95 over varied queries, with and without filters) and peak memory. Prints one JSON object.
Usage: uv run python benchmarks/search_scale.py --assets 100000 [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import time

from meshpilot.mesh.model import Column, DataProduct, Dataset, OutputPort
from meshpilot.tools.catalog import Catalog, product_documents, product_hash

WORDS = ("customer order invoice payment shipment product inventory warehouse supplier campaign click session "
         "revenue refund return account address email phone region country store channel device subscription plan "
         "churn forecast ledger balance transaction currency price discount coupon rating review ticket agent "
         "employee salary department budget asset contract vendor claim policy premium risk score event metric").split()
TYPES = ("VARCHAR", "BIGINT", "DATE", "TIMESTAMP", "DECIMAL(18,2)", "BOOLEAN", "DOUBLE")
DATASETS_PER_PRODUCT = 10


def synthetic_products(assets: int, seed: int = 7) -> list[DataProduct]:
    rng = random.Random(seed)
    products = []
    for p in range(0, assets, DATASETS_PER_PRODUCT):
        domain = f"domain{p // 1000:03d}"
        topic = rng.sample(WORDS, 2)
        ports = []
        for d in range(p, min(p + DATASETS_PER_PRODUCT, assets)):
            name = f"{rng.choice(WORDS)}_{rng.choice(WORDS)}_{d}"
            columns = [Column(name=f"{rng.choice(WORDS)}_{rng.choice(('id', 'name', 'amount', 'date', 'code', 'count'))}_{c}",
                              type=rng.choice(TYPES), description=f"The {rng.choice(WORDS)} {rng.choice(WORDS)} of the {topic[0]}.",
                              classification="EMAIL_ADDRESS" if rng.random() < 0.01 else None)
                       for c in range(rng.randint(15, 25))]
            ports.append(OutputPort(name=f"port{d}", location=f"wh.{name}", dataset=Dataset(
                name=name, qualified_name=f"{domain}.{name}", columns=columns,
                description=f"{topic[0].capitalize()} {topic[1]} facts: {' '.join(rng.sample(WORDS, 6))}.")))
        products.append(DataProduct(id=f"product-{p // DATASETS_PER_PRODUCT}", name=f"{topic[0]} {topic[1]} {p}",
                                    domain=domain, owner=f"team-{p % 50}", tags=rng.sample(WORDS, 2),
                                    description=f"Data about {topic[0]} and {topic[1]}.", output_ports=ports))
    return products


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    products = synthetic_products(args.assets)
    started = time.perf_counter()
    catalog = Catalog.from_products(products)
    build_s = time.perf_counter() - started

    # One product changes: only its documents are replaced.
    changed = products[len(products) // 2].model_copy(deep=True)
    changed.description = "Now also about loyalty tiers and referral rewards."
    changed.output_ports[0].dataset.columns.append(Column(name="loyalty_tier", type="VARCHAR"))
    entries = [(str(p.ref), product_hash(p, None), None) for p in products]
    entries[len(products) // 2] = (str(changed.ref), product_hash(changed, None), lambda: product_documents(changed))
    started = time.perf_counter()
    status = catalog.index.update(entries)
    update_s = time.perf_counter() - started
    assert status["products_changed"] == 1, status
    assert catalog.search("loyalty tier", k=1).hits[0].ref.startswith(str(changed.ref))

    rng = random.Random(11)
    latencies, filtered = [], []
    for i in range(args.queries):
        query = " ".join(rng.sample(WORDS, rng.randint(1, 4)))
        started = time.perf_counter()
        catalog.search(query, k=10)
        latencies.append((time.perf_counter() - started) * 1000)
        if i % 4 == 0:
            started = time.perf_counter()
            catalog.search(query, domain=products[0].domain, kind="column", k=10)
            filtered.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    filtered.sort()
    columns = sum(len(d.columns) for p in products for d in p.datasets)
    print(json.dumps({
        "assets": args.assets, "columns": columns, "products": len(products),
        "build_s": round(build_s, 2), "build_datasets_per_s": round(args.assets / build_s),
        "incremental_update_one_product_ms": round(update_s * 1000, 1),
        "query_p50_ms": round(statistics.median(latencies), 2),
        "query_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
        "filtered_query_p95_ms": round(filtered[int(0.95 * (len(filtered) - 1))], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "config": {"retrieval": "bm25-structured", "embeddings": "none"},
    }))


if __name__ == "__main__":
    main()
