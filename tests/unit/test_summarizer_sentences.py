"""The summarizer's sentence splitter: a documented regular expression (no nltk data)."""

from __future__ import annotations

from aiosys.models.providers.summarizer import split_sentences


def test_sentences_end_at_terminal_punctuation_before_a_capital_or_digit() -> None:
    text = "The plan passed. Was it close? No! 42 members voted.  Version 2.5 is out."
    assert split_sentences(text) == [
        "The plan passed.",
        "Was it close?",
        "No!",
        "42 members voted.",
        "Version 2.5 is out.",
    ]


def test_closing_quotes_and_brackets_stay_with_their_sentence() -> None:
    text = 'He said \u201cStop.\u201d Then he left. (It was late.) "Really?" she asked.'
    assert split_sentences(text) == [
        "He said \u201cStop.\u201d",
        "Then he left.",
        "(It was late.)",
        '"Really?" she asked.',
    ]


def test_abbreviations_and_initials_do_not_end_a_sentence() -> None:
    text = "Dr. Smith met Mr. Jones, e.g. At noon. J. R. R. Tolkien wrote it. See Fig. 3 below."
    assert split_sentences(text) == [
        "Dr. Smith met Mr. Jones, e.g. At noon.",
        "J. R. R. Tolkien wrote it.",
        "See Fig. 3 below.",
    ]


def test_a_blank_line_ends_a_sentence_and_line_breaks_inside_one_are_spaces() -> None:
    text = "Heading without a period\n\nThe body runs\nover two lines. etc. goes on"
    assert split_sentences(text) == [
        "Heading without a period",
        "The body runs over two lines. etc. goes on",
    ]
