"""basic_tfidf: the seed researcher's TF-IDF search, written the way researchers write it (pandas, numpy, tqdm).

It needs a runtime with those packages (`ferry runtimes` lists what the lab offers; `ferry runtime install NAME`
makes a local copy for `ferry run --mock --runtime NAME`). Against inputs/training-data.csv (columns
id,text,source) it scores each search term per document with TF-IDF and reports, per term and source, how many rows
mention it and the strongest score: aggregates only, never a row. The table goes to outputs/tfidf.csv and a summary
to stdout. The same file runs on the mock (`ferry run --mock`) and, once approved, on the private data.
"""

import os

import numpy as np
import pandas as pd
from tqdm import tqdm

TERMS = ["subtilis", "rsv", "influenza"]


def basic_tfidf(df, terms):
    tokens = df["text"].fillna("").str.lower().str.findall(r"[a-z0-9]+")
    lengths = tokens.str.len().clip(lower=1)
    n = len(df)
    rows = []
    for term in tqdm(terms, desc="terms", mininterval=0):
        counts = tokens.apply(lambda words: words.count(term))
        doc_freq = int((counts > 0).sum())
        idf = np.log((1 + n) / (1 + doc_freq)) + 1
        scores = counts / lengths * idf
        hits = df.assign(score=scores)[counts > 0]
        for source, group in hits.groupby("source", sort=True):
            rows.append(
                {
                    "term": term,
                    "source": source,
                    "rows": int(len(group)),
                    "max_tfidf": round(float(group["score"].max()), 4),
                }
            )
    return pd.DataFrame(rows, columns=["term", "source", "rows", "max_tfidf"])


def main():
    df = pd.read_csv(os.path.join("inputs", "training-data.csv"))
    table = basic_tfidf(df, TERMS)
    os.makedirs("outputs", exist_ok=True)
    table.to_csv(os.path.join("outputs", "tfidf.csv"), index=False)
    print(f"scanned {len(df)} rows for {', '.join(TERMS)} with pandas {pd.__version__}")
    for term in TERMS:
        found = table[table["term"] == term]
        listed = ", ".join(f"{r.source} ({r.rows} rows)" for r in found.itertuples()) or "none"
        print(f"{term}: {listed}")


if __name__ == "__main__":
    main()
