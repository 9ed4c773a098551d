"""Prompt-injection detection: rules and a small classifier over normalised and de-obfuscated views of a text.

A text is read several ways before the rules run: folded (`sanitize.fold`: NFKC, hidden
characters, homoglyphs, case), with letter-spacing collapsed ("i g n o r e"), with escapes
undone (`\\u0069`, `%69`, `&#105;`), with embedded base64 and hex payloads decoded, as rot13 and atbash,
reversed and with leetspeak digits read as letters (when the text holds a hint word so written), and with the
payloads of other encodings decoded where the text has their shape (`_decoded`): base32 and base85 (ASCII85, bare
or `<~ ~>`, and RFC 1924) in runs of 16 or more printable characters without spaces, uuencoded lines, quoted-printable
(soft line breaks, `=3D`) and MIME encoded words (`=?utf-8?Q?...?=`), Morse code (eight or more letters of dots
and dashes, ASCII or typographic), NATO phonetic words (eight or more), braille cells, bytes hidden as variation
selectors, bits written as invisible times and plus signs, and Zalgo text (letters under three or more stacked
combining marks, read without them). Each such decoder starts only on a cheap test of its shape (a substring count,
one scan shared with base64, or a character outside ASCII), reads at most `_BUDGET` characters, and gives no view
for bytes that are not mostly printable UTF-8 or codes it does not know. A
rule matching any view is a finding. Rules cover English and Chinese, plus the common Spanish,
French, German and Italian phrasings (folding turns Cyrillic into Latin look-alikes, so Russian
is left to a classifier), in five kinds: instruction override, role hijack, prompt
exfiltration, forged conversation markers, and coerced tool use. They are phrase patterns, not
single words, so "ignore the warning" or "the system prompt is configurable" do not match.
The classifier (`classifier.py`, character n-grams trained on public data in many languages; one model per
channel) scores every view too; a view at or above its threshold is a finding of kind "classifier". With `semantic=True`
(the opt-in `[semantic]` extra) the classifier's score is instead the n-gram score fused with a semantic
head over multilingual sentence vectors (`semantic.py`), at the fusion's own thresholds.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import quopri
import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from gecko_guardrails.classifier import MIN_LENGTH, classifier, pieces
from gecko_guardrails.sanitize import fold
from gecko_guardrails.semantic import PIECES, semantic_model

__all__ = ("Detection", "detect")


@dataclass(frozen=True, slots=True)
class Detection:
    """What `detect` found: the kinds that matched, through which decoding, and the classifier's score.

    The plugin's model-based judge (`Guardrails(judge=...)`) adds the kind `judge` (or `judge failed`) and its
    `reason`, which `describe` leaves out: it is written by a model that read the hostile text.
    """

    kinds: tuple[str, ...] = ()
    decodings: tuple[str, ...] = ()
    score: float = 0.0
    reason: str = ""

    def __bool__(self) -> bool:
        return bool(self.kinds)

    def describe(self) -> str:
        """A short reason for messages: the kinds, and the decodings that revealed them."""
        text = ", ".join(f"classifier {self.score:.2f}" if kind == "classifier" else kind for kind in self.kinds)
        hidden = [name for name in self.decodings if name != "plain"]
        return f"{text} (hidden by {', '.join(hidden)})" if hidden else text


_PREVIOUS = (
    r"(?:all |any |the |your |these |those |my )*"
    r"(?:previous|prior|above|earlier|preceding|original|initial|system|existing|former|given|current)?"
)
_INSTRUCTIONS = (
    r"(?:instructions?|rules|prompts?|directions|directives|guidelines|guardrails|constraints|context|commands|"
    r"orders|programming)"
)


@dataclass(frozen=True, slots=True)
class _Rule:
    """One pattern of one kind; it runs only on views containing one of its `keywords`, which every match contains."""

    kind: str
    keywords: tuple[str, ...]
    pattern: re.Pattern[str]


_RULES: tuple[_Rule, ...] = (
    _Rule(
        "override",
        (
            "ignor",
            "disregard",
            "forget",
            "overrid",
            "bypass",
            "skip",
            "neglect",
            "abandon",
            "drop",
            "discard",
            "vergiss",
        ),
        re.compile(
            r"\b(?:ignore|disregard|forget|override|bypass|skip|neglect|abandon|drop|discard)\s+"
            rf"{_PREVIOUS}\s*{_INSTRUCTIONS}\b"
            r"|\bignora (?:todas )?las instrucciones|\bignore[sz]? (?:toutes )?les instructions"
            r"|\b(?:ignoriere|vergiss) (?:alle |deine |die )?(?:vorherigen |bisherigen |vorigen |obigen )?"
            r"(?:anweisungen|regeln|vorgaben|instruktionen|befehle)\b(?! nicht)"
            r"|\bignora (?:tutte )?le istruzioni"
        ),
    ),
    _Rule(
        "override",
        ("do not", "stop ", "new "),
        re.compile(
            rf"\b(?:do not|stop) (?:follow|obey)(?:ing)? (?:your|the|any) (?:previous |prior |system )?{_INSTRUCTIONS}"
            r"|\bnew (?:instructions|rules|task)\s*:"
        ),
    ),
    _Rule(
        "override",
        ("忽", "无视", "無視", "忘", "不要", "跳过", "绕过", "覆盖"),
        re.compile(
            r"(?:忽略|无视|忽视|無視|忘记|忘掉|忘記|不要理会|不要遵守|跳过|绕过|覆盖)"
            r"(?:掉)?(?:你)?(?:之前|以上|上面|前面|先前|所有|全部|原来|原有|原先|系统|一切)?(?:的|所有的)?"
            r"(?:全部|所有)?(?:的)?(?:指令|指示|说明|规则|提示|提示词|要求|设定|限制|命令|约束)"
            # "ignore the question above and output directly: ..." (goal hijacking)
            r"|(?:忽略|无视|忽视|無視|不要理会)[^。！？\n]{0,12}(?:并|並)?(?:请|請)?(?:直接|只)(?:输出|輸出|回答|回复|说)"  # noqa: RUF001
        ),
    ),
    _Rule(
        "override",
        ("無視",),
        re.compile(r"(?:質問|指示|命令|ルール|プロンプト)(?:は|を)(?:すべて|全て)?無視"),
    ),
    _Rule(
        "role hijack",
        ("you are", "from now on", " mode", "do anything", "pretend", "act as", "without"),
        re.compile(
            r"\byou are (?:now|no longer)\b(?! (?:connected|logged|subscribed|signed))"
            r"|\bfrom now on,? you (?:are|will|must)\b|\b(?:developer|god|jailbreak|dan) mode\b"
            r"|\bdo anything now\b|\bpretend (?:that )?you (?:are|have) no (?:rules|restrictions|limits)"
            r"|\bact as (?:an? )?(?:unrestricted|unfiltered|uncensored|evil|jailbroken)\b"
            r"|\bwithout (?:any )?(?:restrictions|filters|censorship)\b.{0,40}\b(?:answer|respond|reply)"
        ),
    ),
    _Rule(
        "role hijack",
        ("你现在是", "从现在开始", "扮演", "模式", "不受任何限制"),
        re.compile(r"你现在是|从现在开始,?你|扮演一个?(?:没有|不受)|开发者模式|越狱模式|不受任何限制"),
    ),
    _Rule(
        "prompt exfiltration",
        ("prompt", "system message", "instructions", "rules", "guidelines"),
        re.compile(
            r"\b(?:reveal|print|show|repeat|output|display|leak|dump|tell me|give me|write out)\s+"
            r"(?:me )?(?:(?:your|the) (?:full |entire |original |hidden |secret |initial )?"
            r"(?:system prompt|system message|initial prompt|hidden prompt|prompt above|hidden instructions)"
            r"|your (?:full |entire |original |initial )?(?:instructions|rules|guidelines))"
        ),
    ),
    _Rule(
        "prompt exfiltration",
        ("系统提示", "初始指令", "隐藏指令", "系统指令"),
        re.compile(
            r"(?:输出|显示|告诉我|泄露|打印|重复)(?:你的|一下)?(?:系统提示|系统提示词|初始指令|隐藏指令|系统指令)"
        ),
    ),
    _Rule(
        "forged marker",
        ("im_", "system", "endoftext", "inst]", "sys>>", "assistant", "end of", "系统", "管理员"),
        re.compile(
            r"<\|?(?:im_start|im_end|system|endoftext)\|?>|\[/?(?:system|inst)\]|<</?sys>>"
            r"|^\s*(?:#{1,3}\s*)?(?:system|assistant)\s*:\s*(?:new|override|updated|you)"
            r"|\bend of (?:user )?(?:input|document|context)\b.{0,20}\b(?:new|real|actual) instructions"
            r"|(?:系统|管理员)(?:消息|通知|指令)\s*:",
            re.MULTILINE,
        ),
    ),
    _Rule(
        "coerced tool use",
        ("must", "should", "need to", "required to", "will now"),
        re.compile(
            r"\b(?:ai|assistant|agent|model|llm|chatbot)s?\b[^.]{0,60}"
            r"\b(?:must|should|need to|are required to|will now)\b[^.]{0,40}"
            # ... a named tool (snake_case), the word tool/function, an address or a URL.
            r"(?:\b(?:call|invoke|use|run|execute)\s+(?:the\s+)?`?[a-z0-9]+_\w+|\b(?:tool|function)\b|@|https?://)"
        ),
    ),
    _Rule(
        "coerced tool use",
        (" tool", " function"),
        re.compile(
            r"\b(?:call|invoke|use|run) the [\w-]+ (?:tool|function)\b.{0,80}"
            r"\b(?:to|with)\b.{0,60}(?:@|https?://|password|secret|token|key)"
        ),
    ),
    _Rule(
        "coerced tool use",
        ("send", "forward", "email", "upload", "post", "exfiltrate"),
        re.compile(
            r"\b(?:send|forward|email|upload|post|exfiltrate) (?:all |the |this |these |every )*"
            r"(?:conversation|chat history|emails?|files?|documents?|data|credentials|secrets|passwords|keys|contents)"
            r"\b[^.]{0,40}\bto\b"
        ),
    ),
    _Rule(
        "coerced tool use",
        ("工具", "函数", "发送", "转发", "上传"),
        re.compile(
            r"(?:调用|使用|执行)[\w-]*(?:工具|函数).{0,30}(?:发送|转发|上传|删除)"
            r"|(?:把|将)(?:所有|全部)?(?:邮件|文件|数据|对话|密码|密钥|聊天记录).{0,20}(?:发送|转发|上传)(?:到|给)"
        ),
    ),
)

# Words every English rule needs one of ("ignore", "instructions", "prompt", "system", ...), as rot13 and atbash
# write them: signs a rot13 or atbash view is worth reading.
_HINT_WORDS = ("ignor", "instruction", "prompt", "system", "disregard", "forget", "you are", "mode", "send", "tool")
_ROT13_HINTS = tuple(codecs.encode(word, "rot13") for word in _HINT_WORDS)
_ATBASH = str.maketrans(string.ascii_lowercase, string.ascii_lowercase[::-1])
_ATBASH_HINTS = tuple(word.translate(_ATBASH) for word in _HINT_WORDS)
# The same words written backwards ("erongi"), and leetspeak ("1gn0r3"): signs a reversed or leet view is worth reading.
_REVERSED_HINTS = tuple(word[::-1] for word in ("ignor", "instruction", "prompt", "system", "previous", "disregard"))
_WORD = re.compile(r"\b\w{3,30}\b")  # bounded: a 100 000-digit number must stay a linear scan
_LEET = str.maketrans("0134578@$", "oieastbas")
_BLANKS = re.compile(r"[ \t\u3000]+")
_SPACED = re.compile(r"\b(?:\w[ .\-_*]){2,}\w\b")
_ESCAPE = re.compile(r"\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|%[0-9a-fA-F]{2}|&#x?[0-9a-fA-F]{2,6};")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[\s:]?){8,}")
_BUDGET = 65_536  # characters each decoder below reads at most: a 1 MB hostile text costs them no more than 64 KB
# A run of printable ASCII without spaces (started where a run starts: one step per character): it holds any base64
# candidate, and is a base32, base85 (ASCII85, `<~ ~>` around it or not) or uuencoded line's candidate.
_TOKEN = re.compile(r"(?<![!-~])[!-~]{16,}")
_UU_TOKEN = re.compile(r"[!-`]{16,}")
_BASE32_TOKEN = re.compile(r"[A-Z2-7]{16,}={0,6}")
_A85 = frozenset(map(chr, range(ord("!"), ord("u") + 1))) | {"z"}
_B85 = frozenset(string.digits + string.ascii_letters + "!#$%&()*+-;<=>?@^_`{|}~")
# uuencoded lines: a length character, then four characters per three bytes, all in " " to "`" (no lowercase).
_UU_LINE = re.compile(r"(?<![ -`])[ -`]{16,}$", re.MULTILINE)
# A soft line break (not base64's padding) or an escaped byte with a letter in it (`=3D`; code's `x=10` is not one).
_QUOTED = re.compile(r"[^=\s]=\r?\n|=(?:[0-9A-F][A-F]|[A-F][0-9])")
_ENCODED_WORD = re.compile(r"=\?([\w.-]{1,40})\?([BbQq])\?([^?\s]{1,4000})\?=")
# Eight or more Morse letters in a row (dots and dashes as ASCII; middle dots, bullets and dash variants read as them).
_MORSE = re.compile(r"(?:[.\-]{1,7}[ /|]+){7,}[.\-]{1,7}")
_MORSE_MARKS = {"·": ".", "•": ".", "−": "-", "–": "-", "—": "-"}  # noqa: RUF001
_MORSE_STARTS = tuple(f" {mark}" for mark in _MORSE_MARKS)
_MORSE_SIGNS = (
    ".-", "-...", "-.-.", "-..", ".", "..-.", "--.", "....", "..", ".---", "-.-", ".-..", "--", "-.", "---", ".--.",
    "--.-", ".-.", "...", "-", "..-", "...-", ".--", "-..-", "-.--", "--..", "-----", ".----", "..---", "...--",
    "....-", ".....", "-....", "--...", "---..", "----.", ".-.-.-", "--..--", "..--..", "-.-.--", "---...", ".----.",
    "-..-.",
)  # fmt: skip
_MORSE_CODES = dict(zip(_MORSE_SIGNS, "abcdefghijklmnopqrstuvwxyz0123456789.,?!:'/", strict=True))
_BRAILLE = re.compile("[\u2800-\u28ff][\u2800-\u28ff \n]{7,}")
# Grade 1 English braille: the cells of the letters, then of punctuation; the number sign makes a to j digits.
_BRAILLE_LETTERS = dict(zip("⠁⠃⠉⠙⠑⠋⠛⠓⠊⠚⠅⠇⠍⠝⠕⠏⠟⠗⠎⠞⠥⠧⠺⠭⠽⠵⠲⠂⠦⠖⠒⠆⠄⠤⠌", "abcdefghijklmnopqrstuvwxyz.,?!:;'-/", strict=True))
_BRAILLE_NUMBER, _BRAILLE_CAPITAL = "⠼", "⠠"
_BRAILLE_DIGITS = str.maketrans("abcdefghij", "1234567890")
_NATO_WORDS = (
    "alfa", "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor",
    "whiskey", "whisky", "xray", "x-ray", "yankee", "zulu",
)  # fmt: skip
_NATO_WORD = "|".join(sorted(_NATO_WORDS, key=len, reverse=True))
_NATO = re.compile(rf"\b(?:(?:{_NATO_WORD})[\s,/|-]+){{7,}}(?:{_NATO_WORD})\b")
_NATO_SPLIT = re.compile(rf"{_NATO_WORD}|/|\|")
# Eight letters spelled in NATO words use three of these (a, e, i, o, t) unless contrived.
_NATO_COMMON = ("echo", "alfa", "alpha", "oscar", "india", "tango")
# Combining marks stacked three or more on a letter (Zalgo text); languages stack at most two.
_COMBINING = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_STACKED = re.compile(f"[{_COMBINING}]{{3,}}")
_MARKS = re.compile(f"[{_COMBINING}]+")
_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]{4,}")
# ASCII as bits, invisible times (0) and invisible plus (1), words joined by zero-width spaces ("sneaky bits").
_INVISIBLE_BITS = re.compile("[\u2062\u2064\u200b]*[\u2062\u2064]{6}[\u2062\u2064\u200b]*")
# Any character of the encodings above outside ASCII: a text without one (or ASCII) skips their scans.
_UNUSUAL = re.compile(f"[\u2800-\u28ff\ufe00-\ufe0f\U000e0100-\U000e01ef\u2062\u2064{_COMBINING}]")


def detect(text: str, channel: Literal["user", "tool"] = "user", *, semantic: bool = False) -> Detection:
    """Run the rules and the classifier over every view of `text`; a `Detection` naming what matched (falsy when clean).

    `channel` picks the classifier's model and threshold: `"user"` for what a person typed (the plugin uses it
    for tool descriptions too), `"tool"` for content from elsewhere (tool results, retrieved chunks).
    `semantic=True` scores with the fused classifier (`_fused`); it needs the `[semantic]` extra
    (`semantic.SemanticUnavailable` otherwise).
    """
    if semantic:
        return _fused(text, channel)
    kinds: list[str] = []
    decodings: list[str] = []
    model = classifier(channel)
    threshold = model.threshold
    score = 0.0
    for decoding, view in _views(text):
        found = _rules(view)
        probability = model.probability(view)
        score = max(score, probability)
        if probability >= threshold and len(view.strip()) >= MIN_LENGTH:
            found.append("classifier")
        _note(kinds, decodings, decoding, found)
    return Detection(tuple(kinds), tuple(decodings), round(score, 4))


def _fused(text: str, channel: Literal["user", "tool"]) -> Detection:
    """`detect` in semantic mode: the rules over every view; the classifier's score fuses the n-gram model's highest
    probability over the views (its `ADDRESSED` cue counted, as in `detect`) with the semantic head's over the plain
    view's `PIECES` pieces the n-gram model scored highest, and `channel` picks the n-gram model, the fusion and its
    threshold."""
    kinds: list[str] = []
    decodings: list[str] = []
    model = classifier(channel)
    ngram, strongest, top = 0.0, "plain", list[str]()
    for decoding, view in _views(text):
        _note(kinds, decodings, decoding, _rules(view))
        if len(view.strip()) < MIN_LENGTH:
            continue
        parts = pieces(view, model.min_piece)
        scores = [model.piece(part, cued=True) for part in parts]
        if decoding == "plain":
            top = [parts[index] for index in sorted(range(len(parts)), key=lambda index: -scores[index])[:PIECES]]
        if max(scores) > ngram:
            ngram, strongest = max(scores), decoding
    if not top:  # the plain view is too short to judge: only the rules do
        return Detection(tuple(kinds), tuple(decodings))
    head = semantic_model()
    fusion = head.fusions[channel]
    score = fusion.probability(ngram, head.probability(top))
    if score >= fusion.threshold:
        _note(kinds, decodings, strongest, ["classifier"])
    return Detection(tuple(kinds), tuple(decodings), round(score, 4))


def _rules(view: str) -> list[str]:
    return [rule.kind for rule in _RULES if any(word in view for word in rule.keywords) and rule.pattern.search(view)]


def _note(kinds: list[str], decodings: list[str], decoding: str, found: list[str]) -> None:
    """Add the kinds of `found` not yet in `kinds`, and `decoding` when it brought any."""
    fresh = [kind for kind in dict.fromkeys(found) if kind not in kinds]
    if fresh:
        kinds.extend(fresh)
        if decoding not in decodings:
            decodings.append(decoding)


def _views(text: str) -> list[tuple[str, str]]:
    raw_folded = fold(text)
    folded = _BLANKS.sub(" ", raw_folded)
    views = [("plain", folded)]
    # Letters spaced one apart make one word; wider gaps stay word breaks ("i g n o r e  a l l").
    collapsed = _BLANKS.sub(" ", _SPACED.sub(lambda match: re.sub(r"[ .\-_*]", "", match.group()), raw_folded))
    if collapsed != folded:
        views.append(("spacing", collapsed))
    if _ESCAPE.search(text):
        unescaped = html.unescape(unquote(_ESCAPE.sub(_unescape_one, text)))
        views.append(("escapes", fold(unescaped)))
    tokens = _TOKEN.findall(text)
    decoded = [payload for token in tokens for payload in map(_base64, _BASE64.findall(token)) if payload]
    if decoded:
        views.append(("base64", fold(" ".join(decoded))))
    decoded = [payload for payload in map(_hex, _HEX.findall(text)) if payload]
    if decoded:
        views.append(("hex", fold(" ".join(decoded))))
    for name, found in _decoded(text, folded, tokens).items():
        if found and (view := fold(" ".join(found))) != folded:
            views.append((name, view))
    if any(word in folded for word in _ROT13_HINTS):
        views.append(("rot13", codecs.decode(folded, "rot13")))
    if any(word in folded for word in _ATBASH_HINTS):
        views.append(("atbash", folded.translate(_ATBASH)))
    if any(word in folded for word in _REVERSED_HINTS):
        views.append(("reversed", folded[::-1]))
    if sum(_leet(word) for word in _WORD.findall(folded)) >= 2:
        views.append(("leetspeak", folded.translate(_LEET)))
    return views


def _leet(word: str) -> bool:
    return any(char in "013457" for char in word) and any("a" <= char <= "z" for char in word)


def _unescape_one(match: re.Match[str]) -> str:
    token = match.group()
    if token.startswith(("\\u", "\\x")):
        return chr(int(token[2:], 16))
    return token  # %xx and &#..; are undone by unquote and html.unescape


def _base64(token: str) -> str:
    padded = token + "=" * (-len(token) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_" if ("-" in token or "_" in token) else None, validate=True)
    except (binascii.Error, ValueError):
        return ""
    return _printable(raw)


def _hex(token: str) -> str:
    try:
        raw = bytes.fromhex(re.sub(r"[\s:]", "", token))
    except ValueError:
        return ""
    return _printable(raw)


def _printable(raw: bytes) -> str:
    """`raw` as UTF-8 text when over 90 % of it is printable (random bytes are not), its undecodable bytes dropped:
    a payload whose run caught a stray byte or two (a word after it that looks like hex) still reads."""
    text = raw.decode("utf-8", "replace")
    printable = sum((char.isprintable() or char.isspace()) and char != "\ufffd" for char in text)
    return text.replace("\ufffd", "") if text and printable / len(text) > 0.9 else ""


def _decoded(text: str, folded: str, tokens: list[str]) -> dict[str, list[str]]:
    """The payloads of the encodings `text` (`folded` as `_views` folds it, its `_TOKEN` runs `tokens`) has the shape
    of, by encoding. Each decoder runs only where a cheap test finds the shape, and reads at most `_BUDGET`."""
    found: dict[str, list[str]] = {}
    if tokens:
        bounded = _bounded(tokens)
        varied = [token for token in bounded if len(set(token)) >= 8]  # not a rule of dashes or a repeated unit
        found["base32"] = [_base32(token) for token in varied if _BASE32_TOKEN.fullmatch(token)]
        found["base85"] = [_base85(token) for token in varied]
        if any(_UU_TOKEN.fullmatch(token) for token in bounded):
            lines = _bounded(match.group() for match in _UU_LINE.finditer(text))
            found["uuencode"] = ["".join(map(_uudecode, lines))]
    if "=" in text and _QUOTED.search(text):
        found["quoted-printable"] = [_printable(quopri.decodestring(text[:_BUDGET].encode("utf-8", "replace")))]
    if "=?" in text:
        found["MIME encoded words"] = [_encoded_word(match) for match in _ENCODED_WORD.finditer(text, 0, _BUDGET)]
    # Eight Morse letters start seven times after a space.
    if text.count(" .") + text.count(" -") + (0 if text.isascii() else sum(map(text.count, _MORSE_STARTS))) >= 7:
        marks = text
        for mark, ascii_mark in _MORSE_MARKS.items():
            marks = marks.replace(mark, ascii_mark)
        found["morse"] = [_morse(run) for run in _bounded(match.group() for match in _MORSE.finditer(marks))]
    if any(word in folded for word in _NATO_COMMON[:4]) and sum(map(folded.count, _NATO_COMMON)) >= 3:
        found["NATO alphabet"] = [_nato(run) for run in _bounded(match.group() for match in _NATO.finditer(folded))]
    if not text.isascii() and _UNUSUAL.search(text):
        if _STACKED.search(text):
            found["combining marks"] = [_MARKS.sub("", text)]
        for name, pattern, decoder in _UNUSUAL_DECODERS:
            found[name] = [decoder(run) for run in _bounded(match.group() for match in pattern.finditer(text))]
    return {name: [payload for payload in payloads if payload] for name, payloads in found.items()}


def _bounded(runs: Iterable[str]) -> list[str]:
    """`runs`, in order, up to `_BUDGET` characters in all."""
    taken: list[str] = []
    left = _BUDGET
    for run in runs:
        if left <= 0:
            break
        taken.append(run[:left])
        left -= len(taken[-1])
    return taken


def _base32(token: str) -> str:
    try:
        return _printable(base64.b32decode(token.rstrip("=") + "=" * (-len(token.rstrip("=")) % 8)))
    except (binascii.Error, ValueError):
        return ""


def _base85(token: str) -> str:
    """`token` read as ASCII85 (Adobe's `<~ ~>` or bare) or as base85 (RFC 1924), whichever gives text."""
    try:
        if token.startswith("<~") and token.endswith("~>"):
            return _printable(base64.a85decode(token, adobe=True))
        if _A85.issuperset(token) and (decoded := _printable(base64.a85decode(token))):
            return decoded
        return _printable(base64.b85decode(token)) if _B85.issuperset(token) else ""
    except ValueError:  # binascii.Error is a ValueError
        return ""


def _uudecode(tail: str) -> str:
    """The bytes of a uuencoded line ending `tail` (its length character found from the line's length)."""
    for size in range(45, 0, -1):
        width = 1 + 4 * -(-size // 3)
        if width <= len(tail) and tail[-width] == chr(32 + size):
            try:
                return _printable(binascii.a2b_uu(tail[-width:]))
            except binascii.Error:
                return ""
    return ""


def _encoded_word(match: re.Match[str]) -> str:
    """An RFC 2047 encoded word (`=?utf-8?B?...?=`) decoded."""
    charset, kind, payload = match.groups()
    try:
        if kind in "Bb":
            raw = base64.b64decode(payload + "=" * (-len(payload) % 4))
        else:
            raw = binascii.a2b_qp(payload, header=True)
        return raw.decode(charset)
    except (binascii.Error, ValueError, LookupError):  # UnicodeDecodeError is a ValueError
        return ""


def _morse(run: str) -> str:
    """Morse letters, words split by "/", "|" or wider gaps; no text when a fifth of the letters are not Morse."""
    words = re.split(r"\s*[/|]\s*|\s{2,}", run.strip())
    letters = [[_MORSE_CODES.get(code, "") for code in word.split()] for word in words]
    unknown = sum(letter == "" for word in letters for letter in word)
    total = sum(map(len, letters))
    return " ".join("".join(word) for word in letters) if total and unknown * 5 < total else ""


def _braille(run: str) -> str:
    """Grade 1 braille: letters, punctuation, digits after the number sign (a to j); the capital sign dropped."""
    out: list[str] = []
    number = False
    for char in run:
        if char == _BRAILLE_NUMBER:
            number = True
        elif char != _BRAILLE_CAPITAL:
            letter = _BRAILLE_LETTERS.get(char, char if char in " \n" else "")
            number = number and letter not in " \n"
            out.append(letter.translate(_BRAILLE_DIGITS) if number else letter)
    return "".join(out)


def _nato(run: str) -> str:
    """The initials of the NATO words; "/" and "|" are word breaks."""
    return "".join(" " if word in "/|" else word[0] for word in _NATO_SPLIT.findall(run))


def _selectors(run: str) -> str:
    """Bytes hidden as variation selectors, read both ways in use: one byte per selector from U+E0100 (garak), and
    bytes below 16 as U+FE00 to U+FE0F, the others from U+E0100 (Paul Butler's emoji smuggling)."""
    codes = [ord(char) for char in run]
    direct = bytes(code - 0xE0100 for code in codes if code >= 0xE0100)
    shifted = bytes(code - 0xFE00 if code < 0xE0100 else code - 0xE0100 + 16 for code in codes if code < 0xE01F0 - 16)
    return " ".join(filter(None, (_printable(direct), _printable(shifted))))


def _invisible_bits(run: str) -> str:
    """Words of 7-bit (letters) and 6-bit (digits, punctuation) characters written as invisible bits, read as 7-bit
    characters where the rest of the word still parses."""
    words = []
    for word in run.split("\u200b"):
        bits = word.replace("\u2062", "0").replace("\u2064", "1")
        parses = [False] * len(bits) + [True]  # parses[i]: bits[i:] splits into characters
        for position in range(len(bits) - 6, -1, -1):
            parses[position] = bits[position] == "1" and any(
                parses[position + width] for width in (6, 7) if position + width <= len(bits)
            )
        if not parses[0]:
            return ""
        chars, position = [], 0
        while position < len(bits):
            width = 7 if position + 7 <= len(bits) and parses[position + 7] else 6
            chars.append(chr(int(bits[position : position + width], 2)))
            position += width
        words.append("".join(chars))
    return " ".join(words)


_UNUSUAL_DECODERS: tuple[tuple[str, re.Pattern[str], Callable[[str], str]], ...] = (
    ("braille", _BRAILLE, _braille),
    ("variation selectors", _SELECTORS, _selectors),
    ("invisible bits", _INVISIBLE_BITS, _invisible_bits),
)
