"""vaderSentiment baseline for `rapport bench text`.

usage: vader_baseline.py TEXTS ROUNDS
Times polarity_scores over every line of TEXTS, ROUNDS times, on one core; prints one
JSON object with texts/s and the compound score of each text.
"""
import json
import sys
import time

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

with open(sys.argv[1], encoding="utf-8") as f:
    texts = [line.rstrip("\n") for line in f]
rounds = int(sys.argv[2])
analyzer = SentimentIntensityAnalyzer()
compounds = [analyzer.polarity_scores(t)["compound"] for t in texts]
t = time.perf_counter()
for _ in range(rounds):
    for text in texts:
        analyzer.polarity_scores(text)
elapsed = time.perf_counter() - t
print(json.dumps({"texts_per_s": len(texts) * rounds / elapsed, "seconds": elapsed, "compounds": compounds}))
