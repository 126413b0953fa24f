"""Which sources of an instruction-tuning dataset mention dangerous biological agents?

The reference evaluation of Ferry's demo: a keyword and TF-IDF search over the `text` column of
inputs/training-data.csv (columns id,text,source) for the terms below. It reports, per term, the sources whose rows
mention it and their strongest TF-IDF score, never the rows themselves. Results go to stdout and to
outputs/report.json. Runs unchanged on the mock (with `ferry run --mock`) and on the private data (high side).
"""

import csv
import json
import math
import os
import re
from collections import Counter, defaultdict

TERMS = ["subtilis", "rsv", "influenza"]
TOKEN = re.compile(r"[a-z0-9]+")


def tokens(text):
    return TOKEN.findall(text.lower())


def main():
    path = os.path.join("inputs", "training-data.csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    docs = [Counter(tokens(r["text"])) for r in rows]
    n = len(docs)
    df = Counter()
    for d in docs:
        df.update(set(d))
    idf = {t: math.log((1 + n) / (1 + df[t])) + 1 for t in TERMS}

    hits = defaultdict(lambda: defaultdict(float))
    counts = defaultdict(Counter)
    for row, d in zip(rows, docs):
        total = sum(d.values()) or 1
        for term in TERMS:
            if d[term]:
                score = d[term] / total * idf[term]
                src = row["source"]
                hits[term][src] = max(hits[term][src], score)
                counts[term][src] += 1

    report = {
        "rows_scanned": n,
        "terms": {
            term: [
                {"source": src, "rows": counts[term][src], "max_tfidf": round(score, 4)}
                for src, score in sorted(hits[term].items(), key=lambda kv: -kv[1])
            ]
            for term in TERMS
        },
    }
    os.makedirs("outputs", exist_ok=True)
    with open(os.path.join("outputs", "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, sort_keys=True)

    print(f"scanned {n} rows for {', '.join(TERMS)}")
    for term in TERMS:
        sources = report["terms"][term]
        listed = ", ".join(f"{s['source']} ({s['rows']} rows)" for s in sources) or "none"
        print(f"{term}: {listed}")


if __name__ == "__main__":
    main()
