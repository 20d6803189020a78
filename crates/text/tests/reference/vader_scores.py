"""Compound scores from the reference vaderSentiment for each line of a file.

usage: vader_scores.py TEXTS   (one text per line; prints one repr(float) per line)
"""
import sys

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

analyzer = SentimentIntensityAnalyzer()
# Unrounded compound, so the comparison measures the port, not the rounding.
import vaderSentiment.vaderSentiment as vs

with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        text = line.rstrip("\n")
        s = analyzer.polarity_scores(text)
        print(repr(s["compound"]))
