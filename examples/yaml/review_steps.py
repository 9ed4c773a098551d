"""The Python steps of `review.yaml`: a fan-out, a condition, a `Next` jump and a human approval."""

from __future__ import annotations

from gecko.compose.nodes import Next, NodeContext, step


@step
def start(ctx: NodeContext) -> str:
    return str(ctx.input)


@step(writes=("words",))
def count_words(ctx: NodeContext) -> int:
    ctx.state["words"] = len(ctx.get_last_output().split())
    return ctx.state["words"]


@step(writes=("title",))
def make_title(ctx: NodeContext) -> str:
    ctx.state["title"] = ctx.get_last_output().title()
    return ctx.state["title"]


@step
def draft(ctx: NodeContext) -> str:
    return f"{ctx.state['title']} ({ctx.state['words']} words)"


def is_long(ctx: NodeContext) -> bool:
    return bool(ctx.state["words"] >= 3)


def is_short(ctx: NodeContext) -> bool:
    return not is_long(ctx)


@step
def too_short(ctx: NodeContext) -> str:
    return "too short to review"


@step(jumps=("polish",))
def review(ctx: NodeContext) -> object:
    # A reviewer sends every draft through `polish` once, carrying a note in the state.
    return Next(node="polish", input=ctx.get_last_output(), update_state={"note": "tightened wording"})


@step
def polish(ctx: NodeContext) -> str:
    return f"{ctx.get_last_output()}, {ctx.state['note']}"


@step
def approve(ctx: NodeContext) -> str:
    answer = ctx.interrupt({"question": "publish this?", "draft": ctx.get_last_output()})
    return f"{ctx.get_last_output()}: {'published' if answer == 'yes' else 'held back'}"
