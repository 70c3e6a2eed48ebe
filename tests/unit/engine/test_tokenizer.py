from llmsim.engine.tokenizer import SimulatedTokenizer, fnv1a_32

tokenizer = SimulatedTokenizer()


def test_upstream_example_splits_into_five_tokens_TOK_2() -> None:
    assert tokenizer.split("This is a test.") == ["This ", "is ", "a ", "test", "."]


def test_chat_rendering_example_is_ten_tokens_TOK_4() -> None:
    assert tokenizer.count("### user: This is a test.\n") == 10


def test_symbols_are_single_tokens_with_trailing_whitespace() -> None:
    assert tokenizer.split("a,b  (c)_d") == ["a", ",", "b  ", "(", "c", ")", "_", "d"]


def test_token_ids_are_fnv1a_32_of_the_token_text() -> None:
    assert fnv1a_32(b"") == 0x811C9DC5
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968
    assert tokenizer.encode("This is") == [fnv1a_32(b"This "), fnv1a_32(b"is")]


def test_no_character_is_lost_unlike_upstream_TOK_3() -> None:
    for text in ("  leading", "héllo wörld", "a|b `code`", "emoji 🙂 ok", "tab\tand\vvt"):
        assert "".join(tokenizer.split(text)) == text


def test_ascii_text_counts_match_upstream_pattern() -> None:
    import re

    upstream = re.compile(
        r"(\{|\}|:|,|-|\.|\?|\!|;|@|#|\$|%|\^|&|\*|\(|\)|\+|\-|_|~|/|\\|>|<|\[|\]|=|\"|'|\w+)"
        r"([\t\n\f\r ]*)",
        re.ASCII,
    )
    text = 'Hello, world! {"key": [1, 2.5]} x_y = a-b / c\\d <tag> ~50% #1 @me & ^$*+?'
    expected = [m.group(0) for m in upstream.finditer(text)]
    assert tokenizer.split(text) == expected
