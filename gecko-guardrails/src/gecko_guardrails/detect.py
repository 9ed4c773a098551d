"""Prompt-injection detection: rules and a small classifier over normalised and de-obfuscated views of a text.

A text is read several ways before the rules run: folded (`sanitize.fold`: NFKC, hidden
characters, homoglyphs, case), with letter-spacing collapsed ("i g n o r e"), with escapes
undone (`\\u0069`, `%69`, `&#105;`), with embedded base64, hex and rot13 payloads decoded, reversed
and with leetspeak digits read as letters (when the text hints at either). A
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
import re
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

# rot13 of words every English rule needs one of ("ignore", "instructions", "prompt", "system", ...).
_ROT13_HINTS = tuple(
    codecs.encode(word, "rot13")
    for word in ("ignor", "instruction", "prompt", "system", "disregard", "forget", "you are", "mode", "send", "tool")
)
# The same words written backwards ("erongi"), and leetspeak ("1gn0r3"): signs a reversed or leet view is worth reading.
_REVERSED_HINTS = tuple(word[::-1] for word in ("ignor", "instruction", "prompt", "system", "previous", "disregard"))
_WORD = re.compile(r"\b\w{3,30}\b")  # bounded: a 100 000-digit number must stay a linear scan
_LEET = str.maketrans("0134578@$", "oieastbas")
_BLANKS = re.compile(r"[ \t\u3000]+")
_SPACED = re.compile(r"\b(?:\w[ .\-_*]){2,}\w\b")
_ESCAPE = re.compile(r"\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|%[0-9a-fA-F]{2}|&#x?[0-9a-fA-F]{2,6};")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[\s:]?){8,}")


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
    decoded = [payload for payload in map(_base64, _BASE64.findall(text)) if payload]
    if decoded:
        views.append(("base64", fold(" ".join(decoded))))
    decoded = [payload for payload in map(_hex, _HEX.findall(text)) if payload]
    if decoded:
        views.append(("hex", fold(" ".join(decoded))))
    if any(word in folded for word in _ROT13_HINTS):
        views.append(("rot13", codecs.decode(folded, "rot13")))
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
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    # Random bytes that happen to decode are noise; a hidden instruction is mostly printable.
    printable = sum(char.isprintable() or char.isspace() for char in text)
    return text if text and printable / len(text) > 0.9 else ""
