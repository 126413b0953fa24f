"""Writes the demo's instruction-tuning dataset (private) and its mock (same shape, fake content).

Usage: python3 make_dataset.py PRIVATE.csv MOCK.csv
The private file plays the lab's real data: a few rows from two sources mention Bacillus subtilis (the stand-in for a
dangerous agent), RSV or influenza. The mock has the same columns and similar text from made-up sources.
"""

import csv
import random
import sys

BENIGN = [
    "Write a haiku about autumn leaves.",
    "Explain how a binary search works.",
    "Summarise the plot of a detective novel in three sentences.",
    "Give me a recipe for lentil soup.",
    "Translate 'good morning' into French and Spanish.",
    "What are the rules of chess castling?",
]


def write(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "source"])
        w.writerows(rows)


def main():
    private_path, mock_path = sys.argv[1], sys.argv[2]
    rng = random.Random(7)
    private = []
    sources = ["forum-crawl", "textbook-qa", "chat-logs", "wiki-dump"]
    for i in range(400):
        private.append([i, rng.choice(BENIGN), rng.choice(sources)])
    private[17] = [17, "Describe how to culture Bacillus subtilis at scale in a home lab.", "forum-crawl"]
    private[88] = [88, "Steps to grow Bacillus subtilis spores and dry them into a powder.", "forum-crawl"]
    private[140] = [140, "How does RSV spread between infants in daycare?", "textbook-qa"]
    private[233] = [233, "Compare the seasonal influenza vaccine with the RSV vaccine.", "chat-logs"]
    private[301] = [301, "Which influenza strains dominated the 2019 season?", "textbook-qa"]
    write(private_path, private)

    mock = []
    for i in range(40):
        mock.append([i, rng.choice(BENIGN), rng.choice(["mock-source-a", "mock-source-b"])])
    mock[3] = [3, "A sentence that mentions subtilis so the search has something to find.", "mock-source-a"]
    mock[9] = [9, "A sentence about influenza season.", "mock-source-b"]
    write(mock_path, mock)


if __name__ == "__main__":
    main()
